"""Benchmarks every forecast is measured against: seasonal naive and M4's Naive2."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Forecaster, as_array
from .kernels import classical_indices, seasonality_test


@dataclass
class SeasonalNaiveParams:
    period: int | None = field(default=None, metadata={"min": 1, "max": 10_000})


class SeasonalNaive(Forecaster):
    """Repeats the last ``period`` values (the shortest calendar period by default; 1 = naive)."""

    key = "seasonal_naive"
    Params = SeasonalNaiveParams

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"period": 24}

    def _fit(self, y: np.ndarray) -> None:
        period = self.p.period or min(self.periods_, default=1)
        self.period_ = int(period) if period <= len(y) else 1
        self.last_ = y[-self.period_ :].copy()
        diffs = y[self.period_ :] - y[: -self.period_] if len(y) > self.period_ else np.diff(y)
        self.sigma_ = float(np.sqrt(np.mean(diffs**2))) if len(diffs) else 0.0

    def _mean(self, h: int) -> np.ndarray:
        return np.resize(self.last_, h)

    def _get_state(self) -> dict[str, Any]:
        return {"period": self.period_, "last": self.last_, "sigma": self.sigma_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.period_, self.last_, self.sigma_ = int(state["period"]), as_array(state["last"]), float(state["sigma"])


@dataclass
class Naive2Params:
    period: int | None = field(default=None, metadata={"min": 1, "max": 10_000})


class Naive2(Forecaster):
    """M4's Naive2: the last value of the seasonally adjusted series, seasonal indices put back.

    Seasonal when the period passes M4's 90 % autocorrelation test (and the values are positive);
    the indices come from classical multiplicative decomposition, as in the organisers' R code.
    """

    key = "naive2"
    Params = Naive2Params

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"period": 24}

    def _fit(self, y: np.ndarray) -> None:
        period = int(self.p.period or min(self.periods_, default=1))
        n = len(y)
        self.indices_ = np.ones(1)
        self.period_ = 1
        if period > 1 and (y > 0).all() and seasonality_test(y, period):
            self.period_ = period
            self.indices_ = classical_indices(y, period)
        phase = np.arange(n) % self.period_
        adjusted = y / self.indices_[phase]
        self.level_ = float(adjusted[-1])
        self.phase0_ = int(n % self.period_)
        self.sigma_ = float(np.sqrt(np.mean(np.diff(y) ** 2))) if n > 1 else 0.0

    def _mean(self, h: int) -> np.ndarray:
        phase = (self.phase0_ + np.arange(h)) % self.period_
        return self.level_ * self.indices_[phase]

    def _get_state(self) -> dict[str, Any]:
        return {"period": self.period_, "indices": self.indices_, "level": self.level_, "phase0": self.phase0_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.period_, self.indices_ = int(state["period"]), as_array(state["indices"])
        self.level_, self.phase0_ = float(state["level"]), int(state["phase0"])
