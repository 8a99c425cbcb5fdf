"""Statistical detectors on one series: rolling z-score, robust MAD, generalized ESD, EWMA, CUSUM.

Each compares row ``i`` with a baseline of the ``window`` rows before it, so they follow level
drift without refitting. Until a window has filled, the baseline falls back to the training
statistics (fitted state). Scales never drop below ``scale_floor`` of the training data, so flat
stretches give large but finite scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from .base import Detector, ScoreResult
from .rolling import fill_nan, prev_mad_sigma, prev_mean, prev_std, robust_sigma, scale_floor


@dataclass
class WindowParams:
    window: int = field(default=100, metadata={"min": 3, "max": 100_000})
    band_z: float = field(default=3.0, metadata={"min": 0.1, "max": 100.0})


class _Baseline(Detector):
    """Shared fit: training location, scale and floor."""

    tags = {**Detector.tags, "has_expected_band": True, "score_unit": "z"}
    Params = WindowParams

    def _fit(self, X: np.ndarray, timestamps: Any) -> None:
        x = X[:, 0]
        self.center_ = float(np.median(x))
        self.sigma_ = robust_sigma(x)
        self.floor_ = scale_floor(x)

    def _get_state(self) -> dict[str, Any]:
        return {"center": self.center_, "sigma": self.sigma_, "floor": self.floor_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.center_, self.sigma_, self.floor_ = float(state["center"]), float(state["sigma"]), float(state["floor"])

    @property
    def context_size(self) -> int:
        return int(self.p.window) + 1

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"window": 30}

    def _result(self, x: np.ndarray, center: np.ndarray, sigma: np.ndarray) -> ScoreResult:
        center = fill_nan(center, self.center_)
        sigma = np.maximum(fill_nan(sigma, self.sigma_), self.floor_)
        band = self.p.band_z * sigma
        return ScoreResult(np.abs(x - center) / sigma, center, center - band, center + band)


class RollingZScore(_Baseline):
    """|x - mean| / std over the previous ``window`` rows."""

    key = "zscore"

    def _score(self, X: np.ndarray, timestamps: Any) -> ScoreResult:
        x = X[:, 0]
        return self._result(x, prev_mean(x, self.p.window), prev_std(x, self.p.window))


class RobustMAD(_Baseline):
    """|x - median| / (1.4826 MAD) over the previous ``window`` rows."""

    key = "mad"

    def _score(self, X: np.ndarray, timestamps: Any) -> ScoreResult:
        x = X[:, 0]
        med, sigma = prev_mad_sigma(x, self.p.window)
        return self._result(x, med, sigma)


@dataclass
class ESDParams:
    window: int = field(default=100, metadata={"min": 10, "max": 5000})
    alpha: float = field(default=0.05, metadata={"min": 1e-6, "max": 0.5})
    max_outliers: float = field(default=0.1, metadata={"min": 0.01, "max": 0.49})


class GeneralizedESD(Detector):
    """Rosner's generalized ESD test, run causally on the window ending at each row.

    The window ``x[i-window+1 .. i]`` is tested for up to ``max_outliers * window`` outliers at level
    ``alpha``. Score of row ``i``: the largest ``R_j / lambda_j`` over the steps ``j`` from the one
    that removed row ``i`` onward; above 1 means the test calls row ``i`` an outlier.
    """

    key = "esd"
    tags = {**Detector.tags, "needs_fit": False}
    Params = ESDParams

    def _fit(self, X: np.ndarray, timestamps: Any) -> None:
        self.floor_ = scale_floor(X[:, 0])

    def _get_state(self) -> dict[str, Any]:
        return {"floor": self.floor_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.floor_ = float(state["floor"])

    @property
    def context_size(self) -> int:
        return int(self.p.window)

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"window": 30, "alpha": 0.05}

    def _score(self, X: np.ndarray, timestamps: Any) -> np.ndarray:
        x = X[:, 0]
        w = self.p.window
        padded = np.concatenate([np.full(w - 1, np.nan), x])
        views = np.lib.stride_tricks.sliding_window_view(padded, w)
        out = np.zeros(len(x))
        for lo in range(0, len(x), 2048):
            out[lo : lo + 2048] = self._esd_block(views[lo : lo + 2048].copy())
        return out

    def _esd_block(self, block: np.ndarray) -> np.ndarray:
        m, w = block.shape
        steps = max(1, int(self.p.max_outliers * w))
        valid = np.isfinite(block)
        removed_at = np.full(m, steps + 1)
        ratios = np.zeros((m, steps))
        rows = np.arange(m)
        for j in range(steps):
            count = valid.sum(axis=1)
            vals = np.where(valid, block, 0.0)
            mean = vals.sum(axis=1) / np.maximum(count, 1)
            var = (np.where(valid, (block - mean[:, None]) ** 2, 0.0)).sum(axis=1) / np.maximum(count - 1, 1)
            sd = np.maximum(np.sqrt(var), self.floor_)
            dev = np.where(valid, np.abs(block - mean[:, None]) / sd[:, None], -1.0)
            pick = dev.argmax(axis=1)
            r = dev[rows, pick]
            ratios[:, j] = np.where(count >= max(10, w // 4), r / self._lambda(count, j + 1), 0.0)
            current = (pick == w - 1) & (removed_at > steps)
            removed_at[current] = j
            valid[rows, pick] = False
        tail_max = np.maximum.accumulate(ratios[:, ::-1], axis=1)[:, ::-1]
        hit = removed_at <= steps - 1
        return np.where(hit, tail_max[rows, np.minimum(removed_at, steps - 1)], 0.0)

    def _lambda(self, n: np.ndarray, j: int) -> np.ndarray:
        n = n.astype(float)
        dof = np.maximum(n - j - 1, 1.0)
        p = 1.0 - self.p.alpha / (2.0 * np.maximum(n - j + 1, 1.0))
        t = stats.t.ppf(p, dof)
        with np.errstate(all="ignore"):
            lam = (n - j) * t / np.sqrt((dof + t**2) * np.maximum(n - j + 1, 1.0))
        return np.maximum(np.nan_to_num(lam, nan=1e-9, posinf=1e9), 1e-9)


@dataclass
class EWMAParams:
    lam: float = field(default=0.2, metadata={"min": 0.01, "max": 1.0})
    window: int = field(default=200, metadata={"min": 5, "max": 100_000})
    band_z: float = field(default=3.0, metadata={"min": 0.1, "max": 100.0})


class EWMAChart(_Baseline):
    """EWMA control chart: the smoothed series against a rolling in-control mean and sigma.

    Score: distance of the EWMA from the baseline mean in units of the EWMA's own standard
    deviation, ``sigma * sqrt(lam / (2 - lam))``.
    """

    key = "ewma"
    Params = EWMAParams

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"lam": 0.3, "window": 30}

    def _score(self, X: np.ndarray, timestamps: Any) -> ScoreResult:
        import pandas as pd

        x = X[:, 0]
        lam = self.p.lam
        z = pd.Series(x).ewm(alpha=lam, adjust=False).mean().to_numpy()
        center = fill_nan(prev_mean(x, self.p.window), self.center_)
        sigma = np.maximum(fill_nan(prev_std(x, self.p.window), self.sigma_), self.floor_)
        chart_sigma = sigma * np.sqrt(lam / (2.0 - lam))
        band = self.p.band_z * sigma
        return ScoreResult(np.abs(z - center) / chart_sigma, center, center - band, center + band)


@dataclass
class CUSUMParams:
    window: int = field(default=200, metadata={"min": 5, "max": 100_000})
    drift: float = field(default=1.0, metadata={"min": 0.0, "max": 10.0})
    reset: float = field(default=8.0, metadata={"min": 0.1, "max": 1000.0})


class CUSUM(_Baseline):
    """Two-sided tabular CUSUM of standardized deviations from a rolling baseline.

    ``S+ = max(0, S+ + z - drift)``, ``S- = max(0, S- - z - drift)``; score ``max(S+, S-)``. A sum
    that reaches ``reset`` (the decision interval) is restarted from 0 on the next row, as after a
    signal, so a sustained shift does not leave the score high forever.
    """

    key = "cusum"
    tags = {**_Baseline.tags, "has_expected_band": False, "score_unit": "raw"}
    Params = CUSUMParams

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"window": 30}

    def _score(self, X: np.ndarray, timestamps: Any) -> np.ndarray:
        x = X[:, 0]
        center = fill_nan(prev_mean(x, self.p.window), self.center_)
        sigma = np.maximum(fill_nan(prev_std(x, self.p.window), self.sigma_), self.floor_)
        z = ((x - center) / sigma).tolist()
        hi = lo = 0.0
        out = np.zeros(len(z))
        k = self.p.drift
        h = self.p.reset
        for i, zi in enumerate(z):
            hi = max(0.0, hi + zi - k)
            lo = max(0.0, lo - zi - k)
            out[i] = max(hi, lo)
            if out[i] >= h:
                hi = lo = 0.0
        return out
