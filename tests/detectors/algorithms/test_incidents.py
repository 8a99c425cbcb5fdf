"""Incidents: one per fault, as long as the fault, followed across runs exactly as in one pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors.algorithms import detect, get_algorithm
from detectors.algorithms.incidents import Prior, Reference, frozen_reference
from detectors.algorithms.postprocess import false_alarm_rate, sensitivity_threshold


def daily(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return 10 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 1, n), pd.date_range(
        "2024-01-01", periods=n, freq="5min"
    )


def test_it_states_one_threshold_for_each_sensitivity():
    assert [round(false_alarm_rate(s), 8) for s in (0.0, 0.5, 1.0)] == [1e-06, round(10**-2.25, 8), 0.1]
    assert sensitivity_threshold(0.5) == pytest.approx(2.25 / 8)


def test_it_follows_a_level_shift_to_its_end_with_one_alarm():
    values, ts = daily()
    values[1500:1900] += 10
    result = detect("auto", values, ts, train_size=600)
    (incident,) = [e for e in result.events if e.start <= 1700 <= e.end]
    assert (incident.start, incident.close_reason) == (1500, "recovered")
    assert 1895 <= incident.end <= 1905 and incident.closed_at > incident.end
    assert result.is_anomaly[1500:1950].sum() == 1
    assert incident.explanation["shape"] == "level"
    assert incident.severity in {"high", "critical"}


def test_it_never_calls_a_value_inside_its_band_critical():
    values, ts = daily()
    values[2000:2030] = values[2000]  # stuck: inside the band, followed by the repeats
    params = {"features": ["value", "shift", "seasonal", "pattern", "stuck"]}
    result = detect("auto", values, ts, train_size=600, params=params)
    stuck = [e for e in result.events if e.start <= 2010 <= e.end]
    assert stuck and stuck[0].explanation["shape"] == "flatline"
    assert all(e.severity in {"low", "medium"} for e in stuck)


def test_it_rebaselines_after_adapt_after_rows():
    values, ts = daily()
    values[1500:] += 10
    result = detect("auto", values, ts, train_size=600, adapt_after=200)
    first = next(e for e in result.events if e.start == 1500)
    assert (first.end, first.close_reason) == (1699, "rebaselined")
    assert result.in_incident[1750:].sum() < 30


def test_a_reference_survives_json():
    values, _ = daily()
    reference = frozen_reference(values[:, None], 1500, 288)
    loaded = Reference.from_state(reference.to_state(), onset=1500)
    rows = np.arange(1500, 2000)
    np.testing.assert_array_equal(loaded.values(rows), reference.values(rows))
    np.testing.assert_array_equal(loaded.spread(rows), reference.spread(rows))


@pytest.mark.parametrize("mask_after", [0, 1])
@pytest.mark.parametrize("cut", [1600, 1750, 2400])
def test_two_runs_find_what_one_run_finds(cut, mask_after):
    """Scoring up to `cut`, then on from it with the first run's incidents, equals one run over everything."""
    values, ts = daily()
    values[1500:1900] += 10
    values[2500] += 30
    model = get_algorithm("auto")().fit(values[:600], ts[:600])
    whole = detect(model, values, ts, alarm_from=600, mask_after=mask_after)
    before = detect(model, values[:cut], ts[:cut], alarm_from=600, mask_after=mask_after)
    priors = [
        Prior(e.start, e.reference, e.closed_at, end=e.end, progress=e.progress, onset_kept=e.onset_kept)
        for e in before.events
    ]
    after = detect(model, values, ts, alarm_from=cut, priors=priors, mask_after=mask_after)
    closed_before = [(e.start, e.end) for e in before.events if e.closed_at is not None]
    found = closed_before + [(e.start if e.start_ts is not None else None, e.end) for e in after.events]
    if any(e.resumed for e in after.events):
        resumed = next(e for e in after.events if e.resumed)
        found = [(s if s is not None else resumed.start, end) for s, end in found]
    assert found == [(e.start, e.end) for e in whole.events]
    np.testing.assert_allclose(after.anomaly_score[cut:], whole.anomaly_score[cut:])
