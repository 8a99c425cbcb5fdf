"""Predicted crossings of a threshold, and the stored band a detector can use as its expectation."""

from datetime import timedelta

import numpy as np
import pytest

from forecasting import signals
from forecasting.models import Forecast, ForecastCrossing, ForecastPoint, RunTrigger
from forecasting.selectors import forecast_band_at
from forecasting.services import runs
from tests.forecasting.helpers import make_config, utc

pytestmark = pytest.mark.django_db


def test_a_bound_past_the_threshold_predicts_a_crossing_announced_after_commit(
    hourly_dataset, django_capture_on_commit_callbacks
):
    # cpu peaks near 60 on weekdays (50 + 10 sin); mem stays near 80 +- 10 and never goes below 60
    config = make_config(hourly_dataset, metric="", threshold_above=58.0, threshold_below=40.0, threshold_level=95)
    received = []
    receiver = lambda sender, crossing_ids, **kw: received.extend(crossing_ids)  # noqa: E731
    signals.crossings_predicted.connect(receiver, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))
    finally:
        signals.crossings_predicted.disconnect(receiver)
    crossings = {(c.series.metric, c.direction): c for c in ForecastCrossing.objects.select_related("series")}
    assert sorted(received) == sorted(c.pk for c in crossings.values())
    above = crossings[("cpu", "above")]
    forecast = above.forecast
    steps = list(ForecastPoint.objects.filter(forecast=forecast).order_by("ts"))
    first_bound = next(s.ts for s in steps if s.upper[1] > 58.0)
    first_mean = next((s.ts for s in steps if s.mean > 58.0), None)
    assert above.bound_crosses_at == first_bound and above.mean_crosses_at == first_mean
    assert above.expected_at == (first_mean or first_bound)
    assert above.extreme == pytest.approx(max(s.upper[1] for s in steps))
    assert utc("2024-01-22") <= above.bound_crosses_at < utc("2024-01-22T12:00")  # the morning peak
    assert ("mem", "below") not in crossings  # mem's lower bound stays above 40


def test_a_rerun_and_a_backfill_predict_nothing_new(hourly_dataset):
    config = make_config(hourly_dataset, metric="cpu", threshold_above=58.0)
    runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))
    assert ForecastCrossing.objects.count() == 1
    runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))
    origins = [utc("2024-01-16"), utc("2024-01-17")]
    runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.BACKFILL, origins=origins))
    assert Forecast.objects.filter(config=config).count() == 3
    assert ForecastCrossing.objects.count() == 1


def test_a_threshold_level_outside_the_levels_is_refused(hourly_dataset):
    from common.exceptions import ApplicationError

    with pytest.raises(ApplicationError) as info:
        make_config(hourly_dataset, threshold_above=1.0, threshold_level=90)
    assert info.value.extra["field"] == "threshold_level"


def test_the_stored_band_takes_the_latest_forecast_made_before_each_point(hourly_dataset):
    config = make_config(hourly_dataset, metric="cpu", horizon=48)
    origins = [utc("2024-01-16"), utc("2024-01-17")]
    runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.BACKFILL, origins=origins))
    series_id = Forecast.objects.filter(config=config).first().series_id
    wanted = [utc("2024-01-15T12:00"), utc("2024-01-16T05:00"), utc("2024-01-17T05:00"), utc("2024-01-19")]
    us = np.array([int(t.timestamp() * 1_000_000) for t in wanted])
    expected, lower, upper = forecast_band_at(series_id=series_id, ts_us=us, level=95, config_id=config.pk)
    assert np.isnan(expected[0]) and np.isnan(expected[3])  # before any forecast / beyond every horizon
    later = Forecast.objects.get(config=config, trained_until=utc("2024-01-16T23:00"))
    earlier = Forecast.objects.get(config=config, trained_until=utc("2024-01-15T23:00"))
    p1 = ForecastPoint.objects.get(forecast=earlier, ts=wanted[1])
    p2 = ForecastPoint.objects.get(forecast=later, ts=wanted[2])  # covered by both: the later one wins
    assert ForecastPoint.objects.filter(forecast=earlier, ts=wanted[2]).exists()
    assert (expected[1], lower[1], upper[1]) == (p1.mean, p1.lower[1], p1.upper[1])
    assert (expected[2], lower[2], upper[2]) == (p2.mean, p2.lower[1], p2.upper[1])
    assert utc("2024-01-17T05:00") - later.trained_until == timedelta(hours=6)
