"""Per-field validation of the methods' params."""

from __future__ import annotations

import pytest

from forecasting.methods import ParamsError, get_method


@pytest.mark.parametrize(
    ("key", "params", "field", "message"),
    [
        ("ets", {"trend": "X"}, "trend", "must be one of auto, N, A, Ad"),
        ("ets", {"periods": [1]}, "periods", "each period must be between 2 and 10000"),
        ("ets", {"periods": "24"}, "periods", "must be of type list, not str"),
        ("theta", {"periods": [24.5]}, "periods", "must be a list of integers"),
        ("seasonal_naive", {"period": 0}, "period", "must be >= 1"),
        ("arima", {"order": [1, 1]}, "order", "must be a list of 3 integers"),
        ("arima", {"order": [9, 1, 1]}, "order", "p, d and q must be at most 5"),
        ("arima", {"seasonal_order": [0, 1, 1, 1]}, "seasonal_order", "P, D, Q must be at most 2"),
        ("auto", {"candidates": ["nope"]}, "candidates", "must be a non-empty list"),
        ("auto", {"origins": 1}, "origins", "must be >= 2"),
        ("lag_regression", {"penalty": True}, "penalty", "must be of type float/int, not bool"),
    ],
)
def test_it_names_the_bad_field(key, params, field, message):
    with pytest.raises(ParamsError) as info:
        get_method(key).validate_params(params)
    assert field in info.value.errors
    assert info.value.errors[field].startswith(message)


def test_it_reports_every_bad_field_at_once():
    with pytest.raises(ParamsError) as info:
        get_method("arima").validate_params({"order": [9, 9], "trend": "z", "bogus": 1})
    assert set(info.value.errors) == {"order", "trend", "bogus"}
