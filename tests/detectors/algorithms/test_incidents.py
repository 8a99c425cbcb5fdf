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


def test_a_fault_on_a_trending_series_closes_when_the_fault_ends():
    """The frozen reference goes on with the trend, so the trend itself does not keep the incident open."""
    values, ts = daily(4000)
    values += 0.01 * np.arange(4000)  # a full band's width every ~600 rows
    values[2000:2200] += 15
    result = detect("auto", values, ts, train_size=1000)
    (incident,) = [e for e in result.events if e.start <= 2100 <= e.end]
    assert incident.close_reason == "recovered" and 2190 <= incident.end <= 2230
    assert result.in_incident[2300:].mean() < 0.05


def test_a_stuck_sensor_opens_an_incident_however_ordinary_the_value():
    values, ts = daily()
    values[2000:2300] = values[1999]  # stuck inside the usual range
    result = detect("auto", values, ts, train_size=600)
    (incident,) = [e for e in result.events if e.start <= 2100 <= e.end]
    assert 2000 < incident.start <= 2010 and incident.explanation["shape"] == "flatline"
    assert incident.end >= 2290 and incident.close_reason == "recovered"


def test_a_column_that_switches_state_now_and_then_does_not_hold_an_incident_open():
    """A mode that steps to a new level and stays is normal for that column: being in the other mode after a fault
    is no evidence that the fault goes on."""
    rng = np.random.default_rng(3)
    values, ts = daily(16000)
    lengths = rng.integers(800, 2500, 30)
    state = np.concatenate([np.full(n, i % 2, float) for i, n in enumerate(lengths)])[:16000]
    state[8150:12000] = 1 - state[8149]  # switches during the fault and stays
    values[8000:8200] += 15
    result = detect("auto", np.column_stack([values, state]), ts, train_size=6000)
    (incident,) = [e for e in result.events if e.start <= 8100 <= e.end]
    assert incident.end <= 8300 and incident.closed_at is not None
    assert result.in_incident[6000:].mean() < 0.1


def test_many_quiet_columns_do_not_keep_a_fault_in_one_open():
    rng = np.random.default_rng(4)
    values, ts = daily(5000)
    columns = np.column_stack([values] + [rng.normal(0, 1, 5000) for _ in range(15)])
    columns[3000:3200, 5] += 8
    result = detect("auto", columns, ts, train_size=1500)
    (incident,) = [e for e in result.events if e.start <= 3100 <= e.end]
    assert incident.end <= 3260 and "column 5" in incident.explanation["columns"]
    assert result.in_incident[1500:].sum() < 600


def test_a_variance_burst_stays_one_incident_while_it_lasts():
    """Rows of a burst are often inside the band one by one; their steps together say the burst goes on."""
    rng = np.random.default_rng(5)
    values, ts = daily(5000)
    values[3000:3300] += rng.normal(0, 1.5, 300)
    result = detect("auto", values, ts, train_size=1500)
    (incident,) = [e for e in result.events if e.start <= 3150 <= e.end]
    assert incident.start <= 3050 and incident.end >= 3280
    assert result.in_incident[3000:3300].mean() > 0.8


def test_a_broken_relation_between_columns_is_found_and_named_as_one():
    """The second column follows the first; for 200 rows it follows a stretch from elsewhere, each column alone
    staying in its usual range. Columns with a few states take no part in the relation."""
    rng = np.random.default_rng(6)
    first, ts = daily(6000)
    second = 2 * first + rng.normal(0, 1, 6000)
    second[4000:4200] = 2 * first[1000:1200] + rng.normal(0, 1, 200)
    state = np.repeat(rng.integers(0, 3, 60), 100).astype(float)
    result = detect("auto", np.column_stack([first, second, state]), ts, train_size=2000)
    inside = [e for e in result.events if e.start <= 4200 and e.end >= 4000]
    assert inside and min(e.start for e in inside) <= 4010
    assert any(name.startswith("relation[") for e in inside for name in e.explanation.get("features", {}))
    assert not any("relation[2]" in name for e in result.events for name in e.explanation.get("features", {}))


def test_a_column_that_departed_carries_its_own_value_and_band():
    rng = np.random.default_rng(7)
    first, ts = daily(5000)
    second = 50 + rng.normal(0, 2, 5000)
    second[3000:3200] += 20
    result = detect("auto", np.column_stack([first, second]), ts, train_size=1500, columns=["cpu", "mem"])
    (incident,) = [e for e in result.events if e.start <= 3100 <= e.end]
    mem = incident.explanation["columns"]["mem"]
    assert list(incident.explanation["columns"]) == ["mem"]
    assert mem["lower"] < mem["expected"] < mem["upper"] < mem["value"] and 45 <= mem["expected"] <= 55
    assert incident.explanation["text"].startswith(f"mem was {mem['value']:.4g}, expected {mem['lower']:.4g} to")


def test_a_stuck_sensor_is_found_where_values_often_repeat_once_or_twice():
    """Coarse readings repeat now and then; a run far longer than any before, and than chance allows, is stuck."""
    values, ts = daily()
    values = np.round(values / 2) * 2  # about one row in ten repeats the one before, in runs of a few
    values[2000:2200] = values[1999]
    result = detect("auto", values, ts, train_size=600)
    (incident,) = [e for e in result.events if e.start <= 2100 <= e.end]
    assert 2000 < incident.start <= 2030 and incident.end >= 2190
