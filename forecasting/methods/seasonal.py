"""Seasonal adjustment shared by the smoothing and ARIMA methods (several periods at once).

The series (in logs when it is positive and ``seasonal`` is ``multiplicative`` or chosen so) is split
into additive seasonal profiles, one per period, by ``kernels.seasonal_profiles``; the method
forecasts the adjusted series and the profiles are put back. With ``seasonal="auto"`` a period is kept
only when it passes M4's seasonality test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import as_array
from .kernels import seasonal_path, seasonal_profiles, seasonality_test

SEASONAL_CHOICES = ("auto", "none", "additive", "multiplicative")


class SeasonalAdjustment:
    """Fitted seasonal adjustment: ``adjust`` the training values, ``restore`` a forecast."""

    def __init__(self, periods: list[int], profiles: list[np.ndarray], log: bool, n: int, cycles: int):
        self.periods, self.profiles, self.log, self.n, self.cycles = periods, profiles, log, n, cycles

    @classmethod
    def fit(cls, y: np.ndarray, periods: list[int], mode: str, cycles: int = 4) -> SeasonalAdjustment:
        positive = bool((y > 0).all())
        if mode == "none" or not periods:
            return cls([], [], False, len(y), cycles)
        if mode == "auto":
            periods = [p for p in periods if seasonality_test(y, p)]
        log = positive and mode in ("auto", "multiplicative")
        z = np.log(y) if log else y
        profiles = seasonal_profiles(z, periods, cycles=cycles) if periods else []
        return cls(list(periods), profiles, log, len(y), cycles)

    def adjust(self, y: np.ndarray) -> np.ndarray:
        z = np.log(y) if self.log else y.copy()
        if self.periods:
            z = z - seasonal_path(self.profiles, self.periods, 0, len(y))
        return z

    def restore(self, z: np.ndarray) -> np.ndarray:
        if self.periods:
            z = z + seasonal_path(self.profiles, self.periods, self.n, len(z))
        return np.exp(np.clip(z, -700, 700)) if self.log else z

    def state(self) -> dict[str, Any]:
        return {"periods": self.periods, "profiles": self.profiles, "log": self.log, "n": self.n, "cycles": self.cycles}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeasonalAdjustment:
        return cls(
            [int(p) for p in state["periods"]],
            [as_array(p) for p in state["profiles"]],
            bool(state["log"]),
            int(state["n"]),
            int(state["cycles"]),
        )
