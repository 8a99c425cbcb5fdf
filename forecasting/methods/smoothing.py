"""Exponential smoothing (ETS with automatic trend selection) and Theta, on the adjusted series.

Both forecast the seasonally adjusted series (``seasonal.SeasonalAdjustment``, several periods at
once, in logs for positive series), as M4's statistical benchmarks do on Naive2's adjusted series.
Smoothing parameters come from a grid searched in one vectorised pass (``kernels.holt_filter``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Forecaster, as_array
from .kernels import holt_forecast, holt_select, theta_forecast
from .seasonal import SEASONAL_CHOICES, SeasonalAdjustment

TREND_CHOICES = ("auto", "N", "A", "Ad")


@dataclass
class ETSParams:
    trend: str = field(default="auto", metadata={"choices": TREND_CHOICES})
    seasonal: str = field(default="auto", metadata={"choices": SEASONAL_CHOICES})
    periods: list | None = None
    cycles: int = field(default=4, metadata={"min": 2, "max": 100})
    max_fit_rows: int = field(default=2000, metadata={"min": 20, "max": 1_000_000})


class ETS(Forecaster):
    """Additive-error exponential smoothing; trend none / additive / damped chosen by AICc."""

    key = "ets"
    Params = ETSParams

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"periods": [24]}

    def _fit(self, y: np.ndarray) -> None:
        self.adj_ = SeasonalAdjustment.fit(y, self.periods_, self.p.seasonal, self.p.cycles)
        z = self.adj_.adjust(y)[-self.p.max_fit_rows :]
        trends = ["N", "A", "Ad"] if self.p.trend == "auto" else [self.p.trend]
        if len(z) < 10:
            trends = ["N"]
        self.fit_ = holt_select(z, trends)
        self.sigma_ = self.fit_["sigma"]

    def _mean(self, h: int) -> np.ndarray:
        return self.adj_.restore(holt_forecast(self.fit_, h))

    def _get_state(self) -> dict[str, Any]:
        return {"adjustment": self.adj_.state(), "fit": self.fit_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.adj_ = SeasonalAdjustment.from_state(state["adjustment"])
        self.fit_ = {k: (v if k == "trend" else float(v)) for k, v in state["fit"].items()}
        self.sigma_ = self.fit_["sigma"]


@dataclass
class ThetaParams:
    seasonal: str = field(default="auto", metadata={"choices": SEASONAL_CHOICES})
    periods: list | None = None
    cycles: int = field(default=4, metadata={"min": 2, "max": 100})


class Theta(Forecaster):
    """The Theta method (SES with half the linear trend's slope as drift), M4's winner of 2000."""

    key = "theta"
    Params = ThetaParams

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"periods": [24]}

    def _fit(self, y: np.ndarray) -> None:
        self.adj_ = SeasonalAdjustment.fit(y, self.periods_, self.p.seasonal, self.p.cycles)
        self.z_ = self.adj_.adjust(y)
        self.path_, self.alpha_, self.sigma_ = theta_forecast(self.z_, max(self.horizon_, 1))

    def _mean(self, h: int) -> np.ndarray:
        if h > len(self.path_):
            # the drift is linear in the step: extend the path with its last increment
            inc = self.path_[-1] - self.path_[-2] if len(self.path_) > 1 else 0.0
            path = np.concatenate([self.path_, self.path_[-1] + inc * np.arange(1, h - len(self.path_) + 1)])
        else:
            path = self.path_[:h]
        return self.adj_.restore(path)

    def _get_state(self) -> dict[str, Any]:
        return {"adjustment": self.adj_.state(), "path": self.path_, "sigma": self.sigma_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.adj_ = SeasonalAdjustment.from_state(state["adjustment"])
        self.path_, self.sigma_ = as_array(state["path"]), float(state["sigma"])
