"""Feature construction for the machine-learning detectors.

Series mode (an ``(n, d)`` array): for each column, causal window features -- the standardized
value, its deviation from the mean of the previous ``window`` rows, the changes over the last
``n_lags`` rows and the standard deviation of the last ``window`` rows -- plus time of day and day
of week (as sine/cosine pairs) when timestamps are given and the training rows cover at least two
days (hour) or two weeks (weekday), so that every value of the feature was seen in training.

Table mode (a DataFrame): each row's own fields -- numeric columns (missing values take the
training median) and one-hot columns for the training's most frequent categories of every other
column (everything else falls into ``<column>=__other__``).

Either way the features are standardized with the training median and IQR-based sigma, so a
feature's value reads as "how many sigmas from typical", which is also the per-feature
contribution reported in explanations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .rolling import IQR_TO_SIGMA, prev_mean

MAX_CATEGORIES = 20


def series_features(
    X: np.ndarray,
    timestamps: pd.DatetimeIndex | None,
    center: np.ndarray,
    sigma: np.ndarray,
    window: int,
    n_lags: int,
    time_features: tuple[str, ...],
) -> tuple[np.ndarray, list[str]]:
    cols: list[np.ndarray] = []
    names: list[str] = []
    for c in range(X.shape[1]):
        x = X[:, c]
        tag = "" if X.shape[1] == 1 else f"[{c}]"
        z = (x - center[c]) / sigma[c]
        cols.append(z)
        names.append(f"value{tag}")
        cols.append(z - (prev_mean(x, window, 1) - center[c]) / sigma[c])
        names.append(f"dev_from_mean{tag}")
        for lag in range(1, n_lags + 1):
            cols.append(np.concatenate([np.full(lag, np.nan), z[lag:] - z[:-lag]]))
            names.append(f"change_{lag}{tag}")
        cols.append(pd.Series(z).rolling(window, min_periods=2).std().to_numpy())
        names.append(f"rolling_std{tag}")
    if time_features and timestamps is not None:
        hours = (timestamps.hour + timestamps.minute / 60.0).to_numpy(float)
        days = timestamps.day_of_week.to_numpy(float)
        for name, values, period in (("hour", hours, 24.0), ("weekday", days, 7.0)):
            if name not in time_features:
                continue
            cols.append(np.sin(2 * np.pi * values / period))
            names.append(f"{name}_sin")
            cols.append(np.cos(2 * np.pi * values / period))
            names.append(f"{name}_cos")
    return np.column_stack(cols), names


def time_features_for(timestamps: pd.DatetimeIndex | None) -> tuple[str, ...]:
    """Which time features the training span supports: hour after 2 days, weekday after 2 weeks."""
    if timestamps is None or len(timestamps) < 2:
        return ()
    span = (timestamps.max() - timestamps.min()).total_seconds() / 86400.0
    return tuple(name for name, days in (("hour", 2.0), ("weekday", 14.0)) if span >= days)


class TableEncoder:
    """Numeric columns as they are, other columns one-hot over the training's top categories."""

    def __init__(self, numeric: list[str] | None = None, categories: dict[str, list[str]] | None = None):
        self.numeric = list(numeric or [])
        self.categories = {k: list(v) for k, v in (categories or {}).items()}

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> TableEncoder:
        numeric, categories = [], {}
        for col in frame.columns:
            series = frame[col]
            if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
                numeric.append(str(col))
            else:
                top = series.astype("string").fillna("__missing__").value_counts().index[:MAX_CATEGORIES]
                categories[str(col)] = [str(v) for v in top]
        return cls(numeric, categories)

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        frame = frame.rename(columns=str)
        missing = [c for c in [*self.numeric, *self.categories] if c not in frame.columns]
        if missing:
            raise ValueError(f"missing columns {missing}")
        cols: list[np.ndarray] = []
        names: list[str] = []
        for col in self.numeric:
            cols.append(pd.to_numeric(frame[col], errors="coerce").to_numpy(float))
            names.append(col)
        for col, cats in self.categories.items():
            values = frame[col].astype("string").fillna("__missing__").to_numpy(object)
            for cat in cats:
                cols.append((values == cat).astype(float))
                names.append(f"{col}={cat}")
            cols.append((~np.isin(values, cats)).astype(float))
            names.append(f"{col}=__other__")
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0)), names

    def state(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "categories": self.categories}


def robust_scaling(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and IQR-based sigma per column (std, then 1, when the IQR is zero)."""
    center = np.nanmedian(F, axis=0) if len(F) else np.zeros(F.shape[1])
    center = np.nan_to_num(center)
    q75, q25 = np.nanpercentile(F, [75, 25], axis=0) if len(F) else (np.ones(F.shape[1]), np.zeros(F.shape[1]))
    scale = np.nan_to_num((q75 - q25) / IQR_TO_SIGMA)
    std = np.nan_to_num(np.nanstd(F, axis=0))
    scale = np.where(scale > 1e-9, scale, np.where(std > 1e-9, std, 1.0))
    return center, scale
