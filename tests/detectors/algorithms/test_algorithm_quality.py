"""Seeded behaviour checks over the whole registry: recall on injected anomalies, causality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors.algorithms import algorithm_keys, detect, get_algorithm

KEYS = algorithm_keys()
TRAIN = 600
N = 2400
SPIKES = [900, 1150, 1400, 1650]
SHIFT = 1900
# Recall floors: every detector finds most of the injected anomalies; the default (auto) all.
FLOOR = {"auto": 1.0, "cusum": 0.2}  # CUSUM accumulates sustained shifts; single spikes are not its job
DEFAULT_FLOOR = 0.6


def injected_series(seed: int) -> tuple[np.ndarray, pd.DatetimeIndex, list[int]]:
    rng = np.random.default_rng(seed)
    t = np.arange(N)
    values = 50 + 3 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 1.0, N)
    for pos in SPIKES:
        values[pos] += 9.0 if pos % 2 else -9.0
    values[SHIFT:] += 8.0
    return values, pd.date_range("2024-03-01", periods=N, freq="30min"), [*SPIKES, SHIFT]


@pytest.mark.parametrize("key", KEYS)
def test_it_finds_injected_spikes_and_level_shifts(key):
    values, ts, truth = injected_series(seed=7)
    result = detect(key, values, ts, train_size=TRAIN)
    alarms = np.flatnonzero(result.is_anomaly)
    found = [any(pos <= a <= pos + 5 for a in alarms) for pos in truth]
    recall = sum(found) / len(truth)
    assert recall >= FLOOR.get(key, DEFAULT_FLOOR), f"{key}: recall {recall:.2f}, found {found}"


@pytest.mark.parametrize("key", KEYS)
def test_it_scores_causally(key):
    values, ts, _ = injected_series(seed=3)
    cls = get_algorithm(key)
    detector = cls(**cls.get_test_params()).fit(values[:TRAIN], ts[:TRAIN])
    k = 1000
    prefix = detector.score(values[:k], ts[:k])
    changed = values.copy()
    changed[k:] = np.random.default_rng(1).normal(0, 50, N - k)
    full = detector.score(changed, ts)
    np.testing.assert_allclose(full[:k], prefix, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("key", ["auto", "mad", "holt_winters"])
def test_detect_is_causal_end_to_end(key):
    values, ts, _ = injected_series(seed=5)
    k = 1500
    short = detect(key, values[:k], ts[:k], train_size=TRAIN)
    full = detect(key, values, ts, train_size=TRAIN)
    np.testing.assert_allclose(full.anomaly_score[:k], short.anomaly_score, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(full.is_anomaly[:k], short.is_anomaly)


def test_streaming_is_the_last_row_of_a_window_score():
    values, ts, _ = injected_series(seed=11)
    detector = get_algorithm("mad")(window=50).fit(values[:TRAIN])
    batch = detector.score(values)
    window = detector.context_size
    for i in (TRAIN + 10, SPIKES[0], SHIFT + 3):
        assert detector.score(values[i - window + 1 : i + 1])[-1] == pytest.approx(batch[i])
