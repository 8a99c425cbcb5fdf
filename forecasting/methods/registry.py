"""Forecasting method registry: a plain dict of key -> "module:Class", imported lazily on first use."""

from __future__ import annotations

from common.registry import registered_class

from .base import Forecaster

METHODS: dict[str, str] = {
    "auto": "forecasting.methods.auto:AutoForecaster",
    "seasonal_naive": "forecasting.methods.simple:SeasonalNaive",
    "naive2": "forecasting.methods.simple:Naive2",
    "ets": "forecasting.methods.smoothing:ETS",
    "theta": "forecasting.methods.smoothing:Theta",
    "arima": "forecasting.methods.arima:ARIMA",
    "lag_regression": "forecasting.methods.regression:LagRegression",
}


def method_keys() -> list[str]:
    return list(METHODS)


def get_method(key: str) -> type[Forecaster]:
    """The forecaster class registered under ``key`` (KeyError for an unknown key)."""
    return registered_class(METHODS, key, "forecasting method")
