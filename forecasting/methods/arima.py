"""ARIMA / SARIMAX by statsmodels, on the seasonally adjusted series unless a seasonal order is given.

With ``seasonal_order`` the seasonal part is modelled by SARIMAX itself (period = its fourth entry;
slow for long periods such as 24 or 168); without it the multi-period adjustment of
``seasonal.SeasonalAdjustment`` is removed first and put back after. Intervals are SARIMAX's own.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Forecaster, as_array, z_for
from .seasonal import SEASONAL_CHOICES, SeasonalAdjustment


@dataclass
class ARIMAParams:
    order: list = field(default_factory=lambda: [1, 1, 1])
    seasonal_order: list | None = None
    trend: str = field(default="n", metadata={"choices": ("n", "c", "t", "ct")})
    seasonal: str = field(default="auto", metadata={"choices": SEASONAL_CHOICES})
    periods: list | None = None
    max_fit_rows: int = field(default=2000, metadata={"min": 20, "max": 100_000})


def _check_order(value: Any, size: int) -> str | None:
    if not isinstance(value, list) or len(value) != size:
        return f"must be a list of {size} integers"
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 400 for v in value):
        return "entries must be integers between 0 and 400"
    if size == 3 and any(v > 5 for v in value):
        return "p, d and q must be at most 5"
    if size == 4 and (value[3] < 2 or any(v > 2 for v in value[:3])):
        return "P, D, Q must be at most 2 and the period at least 2"
    return None


class ARIMA(Forecaster):
    """SARIMAX(order, seasonal_order) fitted by maximum likelihood (statsmodels)."""

    key = "arima"
    Params = ARIMAParams
    interval_source = "model"

    @classmethod
    def validate_params(cls, params: dict[str, Any] | None) -> dict[str, Any]:
        from .base import ParamsError, validate_params

        errors: dict[str, str] = {}
        try:
            validated = super().validate_params(params)
        except ParamsError as exc:
            errors.update(exc.errors)
            validated = None
        data = dict(params or {})
        if "order" in data and "order" not in errors:
            message = _check_order(data["order"], 3)
            if message:
                errors["order"] = message
        if data.get("seasonal_order") is not None and "seasonal_order" not in errors:
            message = _check_order(data["seasonal_order"], 4)
            if message:
                errors["seasonal_order"] = message
        if errors:
            raise ParamsError(errors)
        del validate_params
        return validated

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"order": [1, 0, 0], "periods": [24]}

    def _fit(self, y: np.ndarray) -> None:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        mode = "none" if self.p.seasonal_order else self.p.seasonal
        self.adj_ = SeasonalAdjustment.fit(y, self.periods_, mode)
        z = self.adj_.adjust(y)[-self.p.max_fit_rows :]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SARIMAX(
                z,
                order=tuple(self.p.order),
                seasonal_order=tuple(self.p.seasonal_order) if self.p.seasonal_order else (0, 0, 0, 0),
                trend=self.p.trend,
            )
            res = model.fit(disp=False)
            fc = res.get_forecast(max(self.horizon_, 1))
        self.path_ = np.asarray(fc.predicted_mean, dtype=float)
        self.se_ = np.sqrt(np.maximum(np.asarray(fc.var_pred_mean, dtype=float), 0.0))
        self.sigma_ = float(self.se_[0]) if len(self.se_) else 0.0

    def _extend(self, arr: np.ndarray, h: int, grow: bool) -> np.ndarray:
        if h <= len(arr):
            return arr[:h]
        k = len(arr)
        tail = arr[-1] * (np.sqrt(np.arange(k + 1, h + 1) / k) if grow else np.ones(h - k))
        return np.concatenate([arr, tail])

    def _mean(self, h: int) -> np.ndarray:
        return self.adj_.restore(self._extend(self.path_, h, grow=False))

    def _interval(self, h: int, level: int, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        path = self._extend(self.path_, h, grow=False)
        width = z_for(level) * self._extend(self.se_, h, grow=True)
        return self.adj_.restore(path - width), self.adj_.restore(path + width)

    def _get_state(self) -> dict[str, Any]:
        return {"adjustment": self.adj_.state(), "path": self.path_, "se": self.se_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.adj_ = SeasonalAdjustment.from_state(state["adjustment"])
        self.path_, self.se_ = as_array(state["path"]), as_array(state["se"])
        self.sigma_ = float(self.se_[0]) if len(self.se_) else 0.0
