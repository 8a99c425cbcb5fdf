"""Direct multi-step lag regression: one ridge regression from recent values to the next h.

Every window of the training values (``lags`` inputs followed by ``horizon`` targets) is normalised
by its own location and scale (mean of its last values, mean absolute deviation), so one set of
coefficients serves every level the series has been at. The model predicts all ``horizon`` steps at
once (no recursion, so errors do not compound). ``lags`` defaults to the longest seasonal period plus
a day's worth for hourly data (a week and a day), or four times the shortest period, capped so that the
regression has at least three windows per input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Forecaster, as_array
from .kernels import lag_windows, normalise, ridge_solve


@dataclass
class LagRegressionParams:
    lags: int | None = field(default=None, metadata={"min": 2, "max": 5000})
    penalty: float = field(default=0.05, metadata={"min": 0.0, "max": 1000.0})
    periods: list | None = None


class LagRegression(Forecaster):
    """Ridge regression from the last ``lags`` values (normalised per window) to the next horizon."""

    key = "lag_regression"
    Params = LagRegressionParams

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"lags": 48, "periods": [24]}

    def _lags(self, n: int, h: int) -> int:
        if self.p.lags:
            wanted = self.p.lags
        elif self.periods_:
            wanted = max(self.periods_) + min(self.periods_)
        else:
            wanted = 26
        room = max(2, (n - h) // 4)
        return int(max(2, min(wanted, room)))

    def _fit(self, y: np.ndarray) -> None:
        h = self.horizon_
        n = len(y)
        self.lags_ = self._lags(n, h)
        self.tail_ = min(self.lags_, min(self.periods_, default=self.lags_))
        if n < self.lags_ + h + 2:
            # too short for one window per target: fall back to the last value
            self.coef_ = None
            self.last_ = y[-self.lags_ :].copy()
            self.sigma_ = float(np.std(np.diff(y))) if n > 1 else 0.0
            return
        X, Y = lag_windows(y, self.lags_, h)
        loc, scale = normalise(X, self.tail_)
        Xn = (X - loc[:, None]) / scale[:, None]
        Yn = (Y - loc[:, None]) / scale[:, None]
        self.coef_ = ridge_solve(Xn, Yn, self.p.penalty)
        self.last_ = y[-self.lags_ :].copy()
        resid = Yn[:, 0] - np.hstack([np.ones((len(Xn), 1)), Xn]) @ self.coef_[:, 0]
        self.sigma_ = float(np.sqrt(np.mean(resid**2)) * np.mean(scale))

    def _mean(self, h: int) -> np.ndarray:
        if self.coef_ is None:
            return np.full(h, self.last_[-1])
        x = self.last_[None, :]
        loc, scale = normalise(x, self.tail_)
        xn = np.concatenate([[1.0], (x[0] - loc[0]) / scale[0]])
        path = loc[0] + scale[0] * (xn @ self.coef_)
        if h <= len(path):
            return path[:h]
        return np.concatenate([path, np.full(h - len(path), path[-1])])

    def _get_state(self) -> dict[str, Any]:
        return {
            "lags": self.lags_,
            "tail": self.tail_,
            "coef": None if self.coef_ is None else self.coef_,
            "last": self.last_,
            "sigma": self.sigma_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.lags_, self.tail_ = int(state["lags"]), int(state["tail"])
        self.coef_ = None if state["coef"] is None else np.array(state["coef"], dtype=float)
        self.last_, self.sigma_ = as_array(state["last"]), float(state["sigma"])
