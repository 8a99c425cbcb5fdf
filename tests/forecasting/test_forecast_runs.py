"""Forecast runs in-process (the same code the workers run): storage, idempotency, backfills, errors."""

from datetime import timedelta

import numpy as np
import pytest

from forecasting.models import Forecast, ForecastModelVersion, ForecastPoint, RunStatus, RunTrigger
from forecasting.services import runs
from forecasting.services.configs import forecast_config_update
from tests.forecasting.helpers import dataset_with_series, hourly_frame, make_config, utc

pytestmark = pytest.mark.django_db


def test_it_stores_one_forecast_per_series_with_every_step_and_band(hourly_dataset):
    config = make_config(hourly_dataset, method="auto", horizon=24, levels=[95, 80])
    run = runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))
    assert run.status == RunStatus.SUCCEEDED and run.forecasts_made == 2 and run.series_done == 2, run.error
    forecast = Forecast.objects.get(config=config, series__metric="cpu")
    assert forecast.levels == [80, 95] and forecast.horizon == 24
    assert forecast.trained_until == utc("2024-01-21T23:00")
    assert forecast.detail["periods"] == [24, 168] and forecast.detail["chosen"]
    steps = list(ForecastPoint.objects.filter(forecast=forecast).order_by("ts"))
    assert [s.ts for s in steps] == [utc("2024-01-22") + timedelta(hours=i) for i in range(24)]
    for step in steps:
        assert step.lower[1] <= step.lower[0] <= step.mean <= step.upper[0] <= step.upper[1]
        assert step.actual is None
    # a Monday follows a weekend: the forecast must know the daily shape (peak near 06:00, trough near 18:00)
    means = np.array([s.mean for s in steps])
    assert 3 <= int(np.argmax(means)) <= 9 and 15 <= int(np.argmin(means)) <= 21


def test_a_rerun_of_a_chunk_stores_nothing_twice(hourly_dataset):
    config = make_config(hourly_dataset)
    run = runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))
    series_ids = list(Forecast.objects.filter(run=run).values_list("series_id", flat=True))
    runs.run_chunk(run_id=run.pk, index=0, series_ids=series_ids)  # redelivered after it finished: ignored
    from forecasting.models import ForecastRun

    ForecastRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)  # even when it runs again
    runs.run_chunk(run_id=run.pk, index=0, series_ids=series_ids)
    run.refresh_from_db()
    assert Forecast.objects.filter(config=config).count() == 2
    assert ForecastPoint.objects.filter(forecast__config=config).count() == 2 * 24
    assert run.forecasts_made == 2 and run.chunks_done == 1


def test_a_backfill_fits_only_before_each_origin_and_is_tracked_at_once(hourly_dataset):
    config = make_config(hourly_dataset, horizon=24, levels=[80, 95])
    origins = runs.backfill_origins(start=utc("2024-01-15"), end=utc("2024-01-18"), every=timedelta(days=1))
    assert origins == [utc("2024-01-15"), utc("2024-01-16"), utc("2024-01-17")]
    run = runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.BACKFILL, origins=origins))
    assert run.status == RunStatus.SUCCEEDED and run.forecasts_made == 6
    forecasts = Forecast.objects.filter(config=config, series__metric="cpu").order_by("made_at")
    assert [f.trained_until for f in forecasts] == [o - timedelta(hours=1) for o in origins]
    for forecast in forecasts:
        assert forecast.points_realised == 24
        steps = ForecastPoint.objects.filter(forecast=forecast).order_by("ts")
        actual = np.array([s.actual for s in steps])
        mean = np.array([s.mean for s in steps])
        expected_smape = np.mean(200 * np.abs(actual - mean) / (np.abs(actual) + np.abs(mean)))
        assert forecast.smape == pytest.approx(expected_smape)
        assert forecast.mase == pytest.approx(np.mean(np.abs(actual - mean)) / forecast.mase_scale)
        inside95 = np.mean([s.lower[1] <= s.actual <= s.upper[1] for s in steps])
        assert forecast.coverage[1] == pytest.approx(inside95)
    # a day-ahead repeat: close on weekdays, but Monday repeats a (quieter) Sunday
    monday, tuesday, wednesday = (f.smape for f in forecasts)
    assert tuesday < 6 and wednesday < 6 and monday > 2 * max(tuesday, wednesday)


def test_it_refuses_a_backfill_with_too_many_origins():
    from common.exceptions import ApplicationError

    with pytest.raises(ApplicationError) as info:
        runs.backfill_origins(start=utc("2024-01-01"), end=utc("2024-12-01"), every=timedelta(hours=1))
    assert info.value.extra["field"] == "every"


def test_a_series_too_short_to_forecast_fails_alone(team):
    dataset = dataset_with_series(team, [hourly_frame(), hourly_frame(metric="new", n=5)])
    config = make_config(dataset)
    run = runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))
    assert run.status == RunStatus.SUCCEEDED and run.forecasts_made == 1
    assert "at least 16 are needed" in run.error
    assert Forecast.objects.filter(config=config).get().series.metric == "cpu"


def test_changing_the_method_makes_a_new_model_version(hourly_dataset):
    config = make_config(hourly_dataset)
    first = runs.run_create(config=config, trigger=RunTrigger.MANUAL).model_version
    assert runs.run_create(config=config, trigger=RunTrigger.MANUAL).model_version == first
    forecast_config_update(config=config, method="theta", params={"periods": [24]})
    second = runs.run_create(config=config, trigger=RunTrigger.MANUAL).model_version
    assert (first.version, second.version) == (1, 2) and second.method == "theta"
    assert ForecastModelVersion.objects.filter(config=config).count() == 2


def test_the_due_claim_starts_each_due_config_once(hourly_dataset, django_capture_on_commit_callbacks):
    from django.utils import timezone

    from forecasting.models import ForecastConfig, ForecastRun

    config = make_config(hourly_dataset, schedule_interval=timedelta(hours=1))
    ForecastConfig.objects.filter(pk=config.pk).update(next_run_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks() as sent:
        started = runs.configs_dispatch_due()
        again = runs.configs_dispatch_due()
    assert len(started) == 1 and again == []
    assert len(sent) == 1  # one chunk task for the two series
    run = ForecastRun.objects.get(pk=started[0])
    assert run.trigger == RunTrigger.SCHEDULE and run.chunks_total == 1
