"""The detector contract, checked for every algorithm in the registry (no database needed)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from detectors.algorithms import NotFittedError, ParamsError, algorithm_keys, get_algorithm

KEYS = algorithm_keys()
N_TRAIN = 400
N = 700


def make_series(seed: int = 0, n: int = N) -> tuple[np.ndarray, pd.DatetimeIndex]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 10 + 2 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, n)
    return values, pd.date_range("2024-01-01", periods=n, freq="h")


def build(key: str):
    cls = get_algorithm(key)
    return cls(**cls.get_test_params())


@pytest.fixture(params=KEYS)
def key(request):
    return request.param


def test_it_returns_self_from_fit(key):
    values, ts = make_series()
    detector = build(key)
    assert detector.fit(values[:N_TRAIN], ts[:N_TRAIN]) is detector


def test_it_scores_every_row_with_finite_scores(key):
    values, ts = make_series()
    scores = build(key).fit(values[:N_TRAIN], ts[:N_TRAIN]).score(values, ts)
    assert scores.shape == (N,)
    assert np.isfinite(scores).all()


def test_it_is_deterministic(key):
    values, ts = make_series()
    first = build(key).fit(values[:N_TRAIN], ts[:N_TRAIN]).score(values, ts)
    second = build(key).fit(values[:N_TRAIN], ts[:N_TRAIN]).score(values, ts)
    np.testing.assert_array_equal(first, second)


def test_it_refuses_to_score_before_fit(key):
    values, ts = make_series()
    with pytest.raises(NotFittedError):
        build(key).score(values, ts)


def test_it_round_trips_its_state_through_json(key):
    values, ts = make_series()
    detector = build(key).fit(values[:N_TRAIN], ts[:N_TRAIN])
    stored = json.loads(json.dumps(detector.get_state(), allow_nan=False))
    loaded = get_algorithm(key).from_state(detector.get_params(), stored)
    np.testing.assert_array_equal(detector.score(values, ts), loaded.score(values, ts))


def test_it_rejects_a_bad_param_with_a_message_for_that_field(key):
    cls = get_algorithm(key)
    with pytest.raises(ParamsError) as excinfo:
        cls.validate_params({**cls.get_test_params(), "no_such_param": 1})
    assert excinfo.value.errors == {"no_such_param": "unknown parameter"}
    field = next(iter(cls.validate_params({})), None)
    if field is not None:
        with pytest.raises(ParamsError) as excinfo:
            cls.validate_params({field: object()})
        assert field in excinfo.value.errors


def test_it_validates_params_on_fit(key):
    values, _ = make_series()
    with pytest.raises(ParamsError):
        get_algorithm(key)(no_such_param=1).fit(values[:N_TRAIN])


def test_it_keeps_flat_stretches_finite(key):
    values = np.full(N, 5.0)
    values[N_TRAIN + 100] = 6.0
    scores = build(key).fit(values[:N_TRAIN]).score(values)
    assert np.isfinite(scores).all()


def test_it_handles_missing_values(key):
    values, ts = make_series()
    values[N_TRAIN + 10 : N_TRAIN + 13] = np.nan
    scores = build(key).fit(values[:N_TRAIN], ts[:N_TRAIN]).score(values, ts)
    assert np.isfinite(scores).all()
    assert (scores[N_TRAIN + 10 : N_TRAIN + 13] == 0).all()


@pytest.mark.parametrize("key", [k for k in KEYS if get_algorithm(k).tags["multivariate"]])
def test_it_scores_multivariate_input(key):
    a, ts = make_series(1)
    b, _ = make_series(2)
    X = np.column_stack([a, b])
    scores = build(key).fit(X[:N_TRAIN], ts[:N_TRAIN]).score(X, ts)
    assert scores.shape == (N,)
    assert np.isfinite(scores).all()


def test_registry_keys_match_class_keys():
    for key in KEYS:
        assert get_algorithm(key).key == key
    with pytest.raises(KeyError):
        get_algorithm("no-such-algorithm")
