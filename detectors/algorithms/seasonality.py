"""Seasonal period inference and phase bookkeeping."""

from __future__ import annotations

import numpy as np
import pandas as pd


def acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation for lags 0..max_lag via FFT."""
    x = np.asarray(x, dtype=float)
    x = x - x.mean()
    n = len(x)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(x, size)
    corr = np.fft.irfft(spec * np.conj(spec), size)[: max_lag + 1]
    return corr / corr[0] if corr[0] > 0 else np.zeros(max_lag + 1)


CALENDAR_PERIODS = (3600.0, 86400.0, 7 * 86400.0)  # hour, day, week in seconds
MIN_PROMINENCE = 0.1


def infer_period(x: np.ndarray, max_period: int | None = None, min_acf: float = 0.3, step: float | None = None) -> int:
    """Seasonal period in rows (0 when none is convincing).

    The series is detrended with a centred moving average of about a tenth of its length. With the
    sampling ``step`` (seconds) known, calendar periods (hour, day, week) of at least 4 rows that fit
    twice in the data and are local autocorrelation peaks come first: the one with the highest
    autocorrelation wins if it reaches ``min_acf``. Otherwise
    the period is the lag of the highest local maximum of the autocorrelation (lags 2..max_period,
    default a third of the length) that reaches ``min_acf``.
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    max_period = min(max_period or n // 3, n // 2 - 1)
    if max_period < 2 or np.std(x) == 0:
        return 0
    trend_w = max(3, n // 10)
    trend = pd.Series(x).rolling(trend_w, center=True, min_periods=1).mean().to_numpy()
    if trend_w <= max_period:
        x = x - trend
    r = acf(x, min(2 * max_period, n - 2))
    dips = np.minimum.accumulate(r)  # dips[k]: the lowest autocorrelation at lags up to k

    def is_peak(lag: int) -> bool:
        # A local maximum that rises clearly above the dip before it: noise on a smoothly decaying
        # autocorrelation makes tiny local maxima at short lags that are no season.
        return r[lag] >= r[lag - 1] and r[lag] >= r[lag + 1] and r[lag] - dips[lag] >= MIN_PROMINENCE

    if step:
        calendar = [int(round(c / step)) for c in CALENDAR_PERIODS]
        # Within one row of the calendar period: sampling jitter and noise move the peak by a row.
        calendar = [m for m in calendar if 4 <= m <= max_period - 1 and is_peak(max((m - 1, m, m + 1), key=r.item))]
        if calendar:
            best_m = max(calendar, key=lambda m: r[m])
            if r[best_m] >= min_acf:
                return int(best_m)
    peaks = [lag for lag in range(2, max_period + 1) if is_peak(lag) and r[lag] >= min_acf]
    if not peaks:
        return 0
    best = max(peaks, key=lambda lag: r[lag])
    # prefer the fundamental: a shorter peak that the best one is a multiple of, nearly as strong
    for lag in sorted(peaks):
        if lag < best and best % lag in (0, 1, lag - 1) and r[lag] >= 0.8 * r[best]:
            return int(lag)
    return int(best)


def phases(n: int, period: int, timestamps: pd.DatetimeIndex | None, origin: float | None, step: float | None):
    """Position of each row within the seasonal cycle.

    With timestamps (and a fitted origin and step in seconds) the phase follows the clock, so any
    window of the series lines up with the training data; without them it is the row number.
    """
    if period < 1:
        return np.zeros(n, dtype=int)
    if timestamps is not None and origin is not None and step:
        secs = timestamps.as_unit("ns").asi8 / 1e9
        return (np.round((secs - origin) / step).astype(np.int64) % period).astype(int)
    return np.arange(n) % period


def time_origin(timestamps: pd.DatetimeIndex | None) -> tuple[float | None, float | None]:
    """(first timestamp, median step) in seconds, or (None, None)."""
    if timestamps is None or len(timestamps) < 2:
        return None, None
    secs = timestamps.as_unit("ns").asi8 / 1e9
    step = float(np.median(np.diff(secs)))
    return (float(secs[0]), step) if step > 0 else (None, None)
