"""Scheduled forecasts and tracking through the broker and a real Celery worker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from forecasting import tasks
from forecasting.models import Forecast, ForecastConfig, ForecastPoint, ForecastRun, RunStatus, RunTrigger
from tests.forecasting.helpers import dataset_with_series, hourly_frame, make_config

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TIMEOUT_S = 90


def wait_for(condition, worker, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"{what} did not happen within {TIMEOUT_S} s; worker output:\n{worker.output()}")


def test_the_beat_tick_runs_due_forecasts_and_new_points_are_tracked(celery_worker, team, owner_client):
    full = hourly_frame(n=24 * 22)
    dataset = dataset_with_series(team, [full.iloc[: 24 * 21], hourly_frame(metric="mem", seed=3)])
    config = make_config(dataset, method="auto", horizon=24, schedule_interval=timedelta(hours=1))
    ForecastConfig.objects.filter(pk=config.pk).update(next_run_at=timezone.now())  # due now
    tasks.dispatch_due.delay()  # what beat sends every DISPATCH_TICK_SECONDS
    finished = lambda: ForecastRun.objects.filter(  # noqa: E731
        config=config, trigger=RunTrigger.SCHEDULE, status=RunStatus.SUCCEEDED
    ).first()
    run = wait_for(finished, celery_worker, "the scheduled forecast")
    assert run.forecasts_made == 2 and run.series_done == 2, run.error
    assert ForecastPoint.objects.filter(forecast__run=run).count() == 2 * 24
    config.refresh_from_db()
    assert config.next_run_at > timezone.now() + timedelta(minutes=59)
    tasks.dispatch_due.delay()  # not due again: no second run
    time.sleep(2)
    assert ForecastRun.objects.filter(config=config, trigger=RunTrigger.SCHEDULE).count() == 1

    # the next six hours of cpu arrive through the API: the worker fills in the forecast's actuals
    fresh = full.iloc[24 * 21 : 24 * 21 + 6]
    csv = fresh.to_csv(index=False, columns=["metric", "ts", "value"]).encode()
    response = owner_client.post(f"/api/v1/datasets/{dataset.pk}/points", csv, content_type="text/csv")
    assert response.status_code == 201 and response.json()["inserted"] == 6
    cpu = Forecast.objects.get(run=run, series__metric="cpu")
    tracked = lambda: Forecast.objects.filter(pk=cpu.pk, points_realised=6).first()  # noqa: E731
    forecast = wait_for(tracked, celery_worker, "tracking of the new points")
    assert forecast.smape is not None and forecast.smape < 15 and len(forecast.coverage) == 2
