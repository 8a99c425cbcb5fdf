"""detect(): calibration, threshold, suppression of repeats, events and their explanations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from detectors.algorithms import ParamsError, detect, get_algorithm
from detectors.algorithms.postprocess import (
    sensitivity_threshold,
    suppress,
    tail_probability,
    to_anomaly_score,
)


def noisy_series(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, pd.DatetimeIndex]:
    rng = np.random.default_rng(seed)
    return 20 + rng.normal(0, 1, n), pd.date_range("2024-01-01", periods=n, freq="5min")


def test_it_calibrates_scores_against_their_own_history():
    rng = np.random.default_rng(0)
    scores = rng.exponential(1.0, 5000)
    p = tail_probability(scores, window=4000)
    assert p.min() > 0 and p.max() <= 1
    # roughly uniform on data like the history: about 1 % of rows below 0.01
    assert 0.003 < (p[1000:] < 0.01).mean() < 0.03
    # a score beyond anything seen gets a small but finite probability
    spiked = np.append(scores, 100.0)
    assert 0 < tail_probability(spiked)[-1] < 1e-6


def test_it_never_uses_later_scores_for_calibration():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=600)
    other = scores.copy()
    other[300:] = 1e6
    np.testing.assert_array_equal(tail_probability(scores)[:300], tail_probability(other)[:300])


def test_it_maps_sensitivity_to_a_monotone_threshold():
    levels = [sensitivity_threshold(s) for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert levels == sorted(levels, reverse=True)
    with pytest.raises(ValueError):
        sensitivity_threshold(1.5)


def test_it_raises_one_alarm_per_burst():
    score = np.zeros(400)
    score[100:110] = 0.9
    score[300] = 0.8
    fresh = suppress(score, quiet=50)
    assert np.flatnonzero(fresh & (score > 0.5)).tolist() == [100, 300]


def test_it_keeps_flat_series_quiet():
    values = np.full(1500, 3.0)
    result = detect("auto", values, train_size=300)
    assert result.events == []
    assert np.isfinite(result.anomaly_score).all()


def test_it_reports_an_event_with_expectation_and_explanation():
    values, ts = noisy_series()
    values[1500] += 15
    result = detect("auto", values, ts, train_size=500)
    assert result.anomaly_score.shape == values.shape
    assert set(np.unique(result.is_anomaly)) <= {0, 1}
    (event,) = [e for e in result.events if e.start <= 1500 <= e.end]
    assert event.peak == 1500
    assert event.value == pytest.approx(values[1500])
    assert event.lower < event.expected < event.upper < event.value
    assert event.severity in {"high", "critical"}
    assert event.peak_ts == ts[1500]
    assert event.explanation["shape"] == "spike"
    assert event.explanation["text"].endswith("a spike.")
    assert event.explanation["features"]
    json.dumps(event.explanation)


def test_it_explains_feature_models_by_feature():
    values, ts = noisy_series()
    values[1200] -= 12
    result = detect("isolation_forest", values, ts, train_size=500)
    (event,) = [e for e in result.events if e.start <= 1200 <= e.end]
    assert event.value < event.lower < event.expected < event.upper  # the band every incident is judged by
    top = next(iter(event.explanation["features"]))
    assert top in {"value", "dev_from_mean", "change_1", "rolling_std"}


def test_it_does_not_alarm_on_training_rows():
    values, ts = noisy_series()
    values[100] += 50
    result = detect("mad", values, ts, train_size=500)
    assert result.is_anomaly[:500].sum() == 0


def test_it_scores_mixed_type_tables_row_by_row():
    rng = np.random.default_rng(3)
    n = 600
    table = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 0.3, n),
            "country": rng.choice(["de", "fr", "it"], n),
            "card_present": rng.random(n) < 0.7,
        }
    )
    table.loc[550, "amount"] = 5000.0
    table.loc[560, "country"] = "zz"
    for key in ("isolation_forest", "lof", "kmeans", "gmm", "one_class_svm"):
        detector = get_algorithm(key)(mode="table").fit(table.iloc[:400])
        scores = detector.score(table)
        normal = np.median(scores[400:])
        assert scores[550] > normal and scores[560] > normal, key
        state = json.loads(json.dumps(detector.get_state(), allow_nan=False))
        loaded = get_algorithm(key).from_state({"mode": "table"}, state)
        np.testing.assert_array_equal(loaded.score(table), scores)


def test_it_rejects_bad_params_per_field():
    with pytest.raises(ParamsError) as excinfo:
        get_algorithm("zscore").validate_params({"window": 1, "band_z": "wide"})
    assert excinfo.value.errors == {"window": "must be >= 3", "band_z": "must be of type float/int, not str"}


def test_ensemble_rejects_unknown_members():
    with pytest.raises(ParamsError) as excinfo:
        get_algorithm("ensemble").validate_params({"members": ["mad", "nope"]})
    assert "members" in excinfo.value.errors


def test_anomaly_score_is_a_log_scale_of_the_tail_probability():
    np.testing.assert_allclose(to_anomaly_score(np.array([1.0, 1e-4, 1e-12])), [0.0, 0.5, 1.0])


def test_a_short_history_does_not_make_a_value_just_above_it_astronomically_rare():
    """The exponential tail is fitted to at least five scores: with one, it has no scale to speak of."""
    from detectors.algorithms.postprocess import tail_probability

    p = tail_probability(np.append(np.arange(30.0), 30.0), window=100)[-1]
    assert 1e-3 < p < 0.05
