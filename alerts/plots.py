"""A small PNG line plot of an incident for emails: pure Python (zlib + struct), no plotting library.

The line of the series, its expected band shaded, the incident's extent in red and, for a predicted
incident, the threshold as a line. No text: the message around it says what it shows.
"""

from __future__ import annotations

import math
import struct
import zlib
from datetime import datetime

WHITE, LINE, BAND, SPAN, RULE, AXIS = (255, 255, 255), (31, 78, 140), (214, 228, 245), (250, 215, 215), \
    (200, 30, 30), (160, 160, 160)  # fmt: skip
MARGIN = 8


def incident_png(
    points: list[tuple[datetime, float | None]],
    *,
    span: tuple[datetime, datetime] | None = None,
    band: tuple[float, float] | None = None,
    threshold: float | None = None,
    width: int = 600,
    height: int = 200,
) -> bytes | None:
    """The PNG bytes, or None when there is nothing to plot."""
    finite = [(t.timestamp(), v) for t, v in points if v is not None and math.isfinite(v)]
    if len(finite) < 2:
        return None
    extra = [x for x in (*(band or ()), threshold) if x is not None and math.isfinite(x)]
    canvas = _Canvas(width, height, [t for t, _ in finite], [v for _, v in finite] + extra)
    if band is not None and all(x is not None and math.isfinite(x) for x in band):
        canvas.fill_rows(min(band), max(band), BAND)
    if span is not None:
        canvas.fill_columns(span[0].timestamp(), span[1].timestamp(), SPAN)
    canvas.hline(canvas.y(canvas.v0), AXIS)
    if threshold is not None:
        canvas.hline(canvas.y(threshold), RULE)
    for (t0, v0), (t1, v1) in zip(finite, finite[1:], strict=False):
        canvas.line(canvas.x(t0), canvas.y(v0), canvas.x(t1), canvas.y(v1), LINE)
    return canvas.png()


class _Canvas:
    def __init__(self, width: int, height: int, times: list[float], values: list[float]):
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(WHITE) * width * height)
        self.t0, self.t1 = min(times), max(times)
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.08 or abs(lo) * 0.08 or 1.0
        self.v0, self.v1 = lo - pad, hi + pad

    def x(self, t: float) -> int:
        span = (self.t1 - self.t0) or 1.0
        return MARGIN + round((t - self.t0) / span * (self.width - 2 * MARGIN - 1))

    def y(self, v: float) -> int:
        return MARGIN + round((self.v1 - v) / (self.v1 - self.v0) * (self.height - 2 * MARGIN - 1))

    def set(self, x: int, y: int, color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i : i + 3] = bytes(color)

    def fill_columns(self, t_from: float, t_to: float, color) -> None:
        left, right = max(self.x(t_from), 0), min(max(self.x(t_to), self.x(t_from) + 2), self.width - 1)
        for y in range(self.height):
            start = (y * self.width + left) * 3
            self.pixels[start : start + (right - left + 1) * 3] = bytes(color) * (right - left + 1)

    def fill_rows(self, v_from: float, v_to: float, color) -> None:
        stride = self.width * 3
        for y in range(max(self.y(v_to), 0), min(self.y(v_from), self.height - 1) + 1):
            self.pixels[y * stride : (y + 1) * stride] = bytes(color) * self.width

    def hline(self, y: int, color) -> None:
        if 0 <= y < self.height:
            self.pixels[y * self.width * 3 : (y + 1) * self.width * 3] = bytes(color) * self.width

    def line(self, x0: int, y0: int, x1: int, y1: int, color) -> None:
        """Bresenham, two pixels thick."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error = dx + dy
        while True:
            self.set(x0, y0, color)
            self.set(x0, y0 + 1, color)
            if x0 == x1 and y0 == y1:
                return
            doubled = 2 * error
            if doubled >= dy:
                error += dy
                x0 += sx
            if doubled <= dx:
                error += dx
                y0 += sy

    def png(self) -> bytes:
        stride = self.width * 3
        raw = b"".join(b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b"")
        )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
