"""The forecaster contract, checked for every method in the registry (no database needed)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forecasting.methods import NotFittedError, ParamsError, get_method, method_keys

KEYS = method_keys()
N = 24 * 21
H = 24


def make_series(seed: int = 0, n: int = N) -> tuple[np.ndarray, pd.DatetimeIndex]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 50 + 0.01 * t + 8 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1.0, n)
    return values, pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")


def build(key: str):
    cls = get_method(key)
    return cls(**cls.get_test_params())


@pytest.fixture(params=KEYS)
def key(request):
    return request.param


def test_it_returns_self_from_fit(key):
    values, ts = make_series()
    model = build(key)
    assert model.fit(values, ts, horizon=H) is model


def test_it_predicts_every_step_with_ordered_bands(key):
    values, ts = make_series()
    result = build(key).fit(values, ts, horizon=H).predict(H, levels=[80, 95])
    assert result.mean.shape == (H,)
    assert np.isfinite(result.mean).all()
    assert (result.lower[95] <= result.lower[80]).all() and (result.lower[80] <= result.mean).all()
    assert (result.mean <= result.upper[80]).all() and (result.upper[80] <= result.upper[95]).all()
    assert (result.upper[95] - result.lower[95]).max() > 0


def test_its_timestamps_continue_the_series(key):
    values, ts = make_series()
    result = build(key).fit(values, ts, horizon=H).predict(H)
    assert result.timestamps[0] == ts[-1] + pd.Timedelta(hours=1)
    assert len(result.timestamps) == H and (np.diff(result.timestamps.asi8) == 3600 * 10**9).all()


def test_it_forecasts_beyond_the_fitted_horizon(key):
    values, ts = make_series()
    result = build(key).fit(values, ts, horizon=H).predict(2 * H)
    assert result.mean.shape == (2 * H,) and np.isfinite(result.upper[95]).all()


def test_it_is_deterministic(key):
    values, ts = make_series()
    first = build(key).fit(values, ts, horizon=H).predict(H)
    second = build(key).fit(values, ts, horizon=H).predict(H)
    np.testing.assert_array_equal(first.mean, second.mean)
    np.testing.assert_array_equal(first.upper[95], second.upper[95])


def test_it_refuses_to_predict_before_fit(key):
    with pytest.raises(NotFittedError):
        build(key).predict(H)


def test_its_state_round_trips_through_json(key):
    values, ts = make_series()
    model = build(key).fit(values, ts, horizon=H)
    state = json.loads(json.dumps(model.get_state(), allow_nan=False))
    restored = get_method(key).from_state(model.params, state)
    before, after = model.predict(H), restored.predict(H)
    np.testing.assert_allclose(after.mean, before.mean, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(after.lower[95], before.lower[95], rtol=1e-12, atol=1e-9)
    assert after.timestamps.equals(before.timestamps)


def test_it_refuses_another_methods_state(key):
    values, ts = make_series()
    other = "seasonal_naive" if key != "seasonal_naive" else "naive2"
    state = build(other).fit(values, ts, horizon=H).get_state()
    with pytest.raises(ValueError, match="belongs to"):
        get_method(key).from_state(get_method(key).get_test_params(), state)


def test_it_reports_unknown_params_per_field(key):
    with pytest.raises(ParamsError) as info:
        get_method(key).validate_params({"bogus": 1})
    assert info.value.errors == {"bogus": "unknown parameter"}


def test_it_fills_defaults(key):
    params = get_method(key).validate_params({})
    assert isinstance(params, dict)


def test_it_fills_missing_values(key):
    values, ts = make_series()
    values[[10, 11, 200]] = np.nan
    result = build(key).fit(values, ts, horizon=H).predict(H)
    assert np.isfinite(result.mean).all() and np.isfinite(result.lower[95]).all()


def test_it_refuses_too_few_values(key):
    with pytest.raises(ValueError, match="at least"):
        build(key).fit(np.arange(5.0), horizon=3)


def test_any_integer_level_is_calibrated_and_nested(key):
    values, ts = make_series()
    result = build(key).fit(values, ts, horizon=H).predict(H, levels=[50, 70, 99])
    assert (result.upper[50] <= result.upper[70]).all() and (result.upper[70] <= result.upper[99]).all()
    assert (result.upper[99] - result.lower[99]).min() > (result.upper[50] - result.lower[50]).min()
