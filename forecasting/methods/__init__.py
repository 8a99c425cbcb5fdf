"""Forecasting methods: pure Python (numpy, pandas, statsmodels), no Django. See ``base`` for the contract."""

from .base import DEFAULT_LEVELS, Forecaster, ForecastResult, NotFittedError, ParamsError
from .registry import get_method, method_keys

__all__ = [
    "DEFAULT_LEVELS",
    "ForecastResult",
    "Forecaster",
    "NotFittedError",
    "ParamsError",
    "get_method",
    "method_keys",
]
