"""Server-side SVG line plots of a series, with optional anomaly markers and an expected band.

Pure Python: coordinates are computed here, the markup lives in `ingestion/plots/line.svg`, whose
autoescaping takes care of every piece of text (title, labels, tooltips).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.template.loader import render_to_string

Number = float | int | None


@dataclass(frozen=True)
class _Frame:
    """Maps (epoch seconds, value) to pixels inside the plotting area."""

    t0: float
    t1: float
    v0: float
    v1: float
    left: float
    top: float
    width: float
    height: float

    def x(self, t: float) -> float:
        return self.left + (t - self.t0) / (self.t1 - self.t0) * self.width

    def y(self, v: float) -> float:
        return self.top + (self.v1 - v) / (self.v1 - self.v0) * self.height


MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 16, 24, 40
TIME_TICKS = 5


def line_svg(
    points: Sequence[tuple[datetime, Number]],
    *,
    markers: Iterable[tuple[datetime, Number]] | None = None,
    band: Iterable[tuple[datetime, Number, Number]] | None = None,
    spans: Iterable[tuple[datetime, datetime, str]] | None = None,
    title: str = "",
    width: int = 800,
    height: int = 260,
) -> str:
    """An SVG document: the line of `points`, `markers` as red dots, `band` (ts, lower, upper) shaded behind,
    and `spans` (start, end, label): incidents, shaded across the plot's height. The root element carries
    its time scale (data-t0/t1 in epoch seconds over data-left/width pixels) for pages that map a pointer
    back to a time."""
    markers = [(ts, v) for ts, v in (markers or []) if _finite(v)]
    band = [(ts, lo, hi) for ts, lo, hi in (band or []) if _finite(lo) and _finite(hi)]
    times = [ts.timestamp() for ts, _ in points] + [row[0].timestamp() for row in [*markers, *band]]
    values = [v for _, v in points if _finite(v)] + [v for _, v in markers]
    values += [lo for _, lo, _ in band] + [hi for _, _, hi in band]
    context = {"width": width, "height": height, "title": title, "empty": not values}
    if values:
        frame = _frame(times, values, width=width, height=height)
        context.update(_draw(frame, points=points, markers=markers, band=band))
        context["spans"] = _spans(frame, spans or [])
    return render_to_string("ingestion/plots/line.svg", context)


def _frame(times: list[float], values: list[float], *, width: int, height: int) -> _Frame:
    t0, t1 = min(times), max(times)
    if t1 == t0:
        t0, t1 = t0 - 1, t1 + 1
    v0, v1 = min(values), max(values)
    pad = (v1 - v0) * 0.05 or abs(v0) * 0.05 or 1.0
    return _Frame(
        t0=t0,
        t1=t1,
        v0=v0 - pad,
        v1=v1 + pad,
        left=MARGIN_LEFT,
        top=MARGIN_TOP,
        width=width - MARGIN_LEFT - MARGIN_RIGHT,
        height=height - MARGIN_TOP - MARGIN_BOTTOM,
    )


def _draw(frame: _Frame, *, points, markers, band) -> dict:
    values = [v for _, v in points if _finite(v)] + [v for _, v in markers]
    values += [b for _, lo, hi in band for b in (lo, hi)]
    low, high = min(values), max(values)
    return {
        "frame": frame,
        "bottom": frame.top + frame.height,
        "right": frame.left + frame.width,
        "line": _line_path(frame, points),
        "band_points": _band_polygon(frame, band),
        "markers": [
            {"x": _px(frame.x(ts.timestamp())), "y": _px(frame.y(v)), "label": f"{_time(ts)}: {_value(v)}"}
            for ts, v in markers
        ],
        "y_labels": [
            {"y": _px(frame.y(high)), "text": _value(high)},
            {"y": _px(frame.y(low)), "text": _value(low)},
        ],
        "x_labels": _time_labels(frame),
        "point_count": len(points),
    }


def _spans(frame: _Frame, spans) -> list[dict]:
    """Shaded rectangles, clipped to the plot; a span of one point still gets a visible width."""
    shaded = []
    for start, end, label in spans:
        x0 = max(frame.left, frame.x(start.timestamp()))
        x1 = min(frame.left + frame.width, frame.x(end.timestamp()))
        if x1 < frame.left or x0 > frame.left + frame.width:
            continue
        shaded.append({"x": _px(x0 - 1), "width": _px(max(x1 - x0, 0) + 2), "label": label})
    return shaded


def _line_path(frame: _Frame, points) -> str:
    """One path; a missing value (None or NaN) lifts the pen, so gaps stay visible."""
    parts: list[str] = []
    pen_down = False
    for ts, v in points:
        if not _finite(v):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{_px(frame.x(ts.timestamp()))} {_px(frame.y(v))}")
        pen_down = True
    return " ".join(parts)


def _band_polygon(frame: _Frame, band) -> str:
    if not band:
        return ""
    upper = [f"{_px(frame.x(ts.timestamp()))},{_px(frame.y(hi))}" for ts, _, hi in band]
    lower = [f"{_px(frame.x(ts.timestamp()))},{_px(frame.y(lo))}" for ts, lo, _ in reversed(band)]
    return " ".join(upper + lower)


def _time_labels(frame: _Frame) -> list[dict]:
    span = frame.t1 - frame.t0
    fmt = "%Y-%m-%d" if span > 3 * 86400 else "%m-%d %H:%M" if span > 3600 else "%H:%M:%S"
    labels = []
    for i in range(TIME_TICKS):
        t = frame.t0 + span * i / (TIME_TICKS - 1)
        anchor = "start" if i == 0 else "end" if i == TIME_TICKS - 1 else "middle"
        labels.append({"x": _px(frame.x(t)), "text": datetime.fromtimestamp(t, tz=UTC).strftime(fmt), "anchor": anchor})
    return labels


def _finite(v: Number) -> bool:
    return v is not None and math.isfinite(v)


def _px(coordinate: float) -> str:
    return f"{coordinate:.1f}"


def _value(v: float) -> str:
    return f"{v:.4g}"


def _time(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
