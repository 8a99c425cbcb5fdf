"""A stored forecast's interval as a detector's expected band.

``ForecastBand`` wraps a fitted detector. On the rows a forecast covers it *replaces* the detector's
expectation: the point's score is how unlikely its distance from the forecast mean is, with the
forecast's interval read as a normal one (``sigma = half-width / z(level)``), so a point inside the
band scores at most ``-log10(1 - level)`` and one beyond it scores more the further it is. On the rows
no forecast covers, the wrapped detector's own score stands (calibrated to the same unit). Scores are
``-log10 p`` (``score_unit = "neglog10p"``), so the post-processing treats both alike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from .base import Detector, ScoreResult
from .postprocess import DEFAULT_CALIBRATION_WINDOW, calibrate

LN10 = math.log(10.0)


def z_of_level(level: float) -> float:
    """The normal quantile whose two-sided interval holds ``level`` % (1.96 for 95)."""
    return float(stats.norm.ppf(0.5 + level / 200.0))


def band_neglog10p(x: np.ndarray, mean: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float) -> np.ndarray:
    """-log10 of the two-sided normal tail probability of each x under the band (NaN where no band)."""
    sigma = np.maximum((upper - lower) / 2.0, 1e-12) / z_of_level(level)
    z = np.abs(x - mean) / sigma
    return -(special.log_ndtr(-z) + math.log(2.0)) / LN10


class ForecastBand(Detector):
    """``inner``'s scores, replaced by the forecast band's where one covers the row (module docstring).

    ``band_us``, ``mean``, ``lower`` and ``upper``: the band per timestamp (µs since the epoch, sorted),
    NaN where no forecast covers it; rows are matched to it by their timestamps.
    """

    key = "forecast_band"

    def __init__(self, inner: Detector, band_us: np.ndarray, mean, lower, upper, level: float):
        super().__init__()
        self.inner, self.level = inner, float(level)
        self.band_us = np.asarray(band_us, dtype=np.int64)
        self.mean, self.lower, self.upper = (np.asarray(a, dtype=float) for a in (mean, lower, upper))
        self.inner_unit = inner.tags.get("score_unit", "raw")
        self.tags = {**inner.tags, "score_unit": "neglog10p"}
        self.n_features_in_ = getattr(inner, "n_features_in_", 1)

    def __getattr__(self, name: str) -> Any:  # period_, fill_, ...: the wrapped detector's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def p(self) -> Any:
        return self.inner.p

    @property
    def context_size(self) -> int:
        extra = 0 if self.inner_unit == "neglog10p" else DEFAULT_CALIBRATION_WINDOW
        return self.inner.context_size + extra

    def band_at(self, ts: pd.DatetimeIndex | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, lower, upper) for each of ``n`` rows stamped ``ts``; NaN where no forecast covers it."""
        out = np.full((3, n), np.nan)
        if ts is None or not len(self.band_us):
            return out[0], out[1], out[2]
        us = np.asarray(pd.DatetimeIndex(ts).as_unit("us").asi8, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.band_us, us), 0, len(self.band_us) - 1)
        hit = self.band_us[pos] == us
        for k, source in enumerate((self.mean, self.lower, self.upper)):
            out[k, hit] = source[pos[hit]]
        return out[0], out[1], out[2]

    def score_details(
        self, X: Any, timestamps: Any = None, exact_from: int = 0, kept: dict[int, Any] | None = None
    ) -> ScoreResult:
        keeps = bool(self.inner.tags.get("keeps_features"))
        result = self.inner.score_details(X, timestamps, exact_from=exact_from, kept=kept if keeps else None)
        if self.inner_unit == "neglog10p":
            score = np.maximum(result.score, 0.0)
        else:
            score = -np.log10(calibrate(result.score, self.inner_unit, DEFAULT_CALIBRATION_WINDOW))
        x = np.asarray(X, dtype=float).reshape(len(score), -1)[:, 0]
        ts = None if timestamps is None else pd.DatetimeIndex(timestamps)
        mean, lower, upper = self.band_at(ts, len(score))
        covered = np.isfinite(mean) & np.isfinite(lower) & np.isfinite(upper) & np.isfinite(x)
        score[covered] = band_neglog10p(x[covered], mean[covered], lower[covered], upper[covered], self.level)
        if kept and not keeps:
            for row, value in kept.items():
                score[row] = value
        expected, low, high = (
            (np.full(len(score), np.nan) if a is None else np.array(a, dtype=float))
            for a in (result.expected, result.lower, result.upper)
        )
        expected[covered], low[covered], high[covered] = mean[covered], lower[covered], upper[covered]
        return ScoreResult(
            score=score, expected=expected, lower=low, upper=high, contributions=result.contributions,
            feature_names=result.feature_names, features=result.features,
        )  # fmt: skip

    def _fit(self, X: Any, timestamps: pd.DatetimeIndex | None) -> None:  # pragma: no cover - wraps a fitted one
        raise NotImplementedError("ForecastBand wraps an already fitted detector")

    def _score(self, X: Any, timestamps: pd.DatetimeIndex | None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _get_state(self) -> dict[str, Any]:  # pragma: no cover - never stored: the wrapped model is
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError
