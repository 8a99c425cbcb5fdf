"""Causal rolling statistics shared by the detectors (pure numpy/pandas).

Every ``prev_*`` helper describes the rows strictly before ``i`` (``x[i-window:i]``); row ``i``
itself is never part of its own baseline. Rows without ``min_periods`` earlier values get NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

IQR_TO_SIGMA = 1.349
MAD_TO_SIGMA = 1.4826


def _prev(x: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(x, dtype=float)).shift(1)


def prev_mean(x: np.ndarray, window: int, min_periods: int = 2) -> np.ndarray:
    return _prev(x).rolling(window, min_periods=min(min_periods, window)).mean().to_numpy()


def prev_std(x: np.ndarray, window: int, min_periods: int = 3) -> np.ndarray:
    return _prev(x).rolling(window, min_periods=min(min_periods, window)).std().to_numpy()


def prev_median(x: np.ndarray, window: int, min_periods: int = 2) -> np.ndarray:
    return _prev(x).rolling(window, min_periods=min(min_periods, window)).median().to_numpy()


def prev_iqr_sigma(x: np.ndarray, window: int, min_periods: int = 5) -> np.ndarray:
    """Robust standard deviation (IQR / 1.349) of the previous ``window`` values."""
    roll = _prev(x).rolling(window, min_periods=min(min_periods, window))
    return ((roll.quantile(0.75) - roll.quantile(0.25)) / IQR_TO_SIGMA).to_numpy()


def prev_mad_sigma(x: np.ndarray, window: int, min_periods: int = 5, chunk: int = 4096) -> np.ndarray:
    """Median and MAD-based sigma of the previous ``window`` values, as two arrays."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    padded = np.concatenate([np.full(window, np.nan), x[:-1] if n else x])
    med = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    views = np.lib.stride_tricks.sliding_window_view(padded, window)[:n]
    counts = pd.Series(np.isfinite(padded)).rolling(window).sum().to_numpy()[window - 1 : window - 1 + n]
    for lo in range(0, n, chunk):
        block = views[lo : lo + chunk]
        with np.errstate(all="ignore"), _quiet_nan():
            m = np.nanmedian(block, axis=1)
            d = np.nanmedian(np.abs(block - m[:, None]), axis=1)
        med[lo : lo + chunk] = m
        mad[lo : lo + chunk] = d * MAD_TO_SIGMA
    enough = counts >= min(min_periods, window)
    med[~enough] = np.nan
    mad[~enough] = np.nan
    return np.vstack([med, mad])


class _quiet_nan:
    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def scale_floor(x: np.ndarray) -> float:
    """Smallest scale a deviation is measured against, so flat stretches never divide by zero.

    One thousandth of the data's spread (robust, else plain std), at least a millionth of its
    typical magnitude, at least 1e-9.
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return 1e-9
    q75, q25 = np.percentile(x, [75, 25])
    spread = (q75 - q25) / IQR_TO_SIGMA
    if spread <= 0:
        spread = float(np.std(x))
    return float(max(1e-3 * spread, 1e-6 * float(np.median(np.abs(x))), 1e-9))


def robust_sigma(x: np.ndarray) -> float:
    """IQR-based sigma, falling back to MAD and the plain std when the IQR is zero."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return 0.0
    q75, q25 = np.percentile(x, [75, 25])
    sigma = (q75 - q25) / IQR_TO_SIGMA
    if sigma <= 0:
        sigma = float(np.median(np.abs(x - np.median(x)))) * MAD_TO_SIGMA
    if sigma <= 0:
        sigma = float(np.std(x))
    return float(sigma)


def fill_nan(values: np.ndarray, fallback: float) -> np.ndarray:
    out = np.asarray(values, dtype=float).copy()
    out[~np.isfinite(out)] = fallback
    return out
