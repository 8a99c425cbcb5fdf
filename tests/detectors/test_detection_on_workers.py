"""Manual, scheduled and realtime detection through the broker and a real Celery worker."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from detectors import tasks
from detectors.models import Anomaly, DetectionRun, Detector, RunStatus, RunTrigger
from detectors.services.configs import detector_create
from tests.detectors.helpers import SPIKES, dataset_with_series, series_frame

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TIMEOUT_S = 60


def wait_for(condition, worker, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"{what} did not happen within {TIMEOUT_S} s; worker output:\n{worker.output()}")


def finished_run(detector, trigger):
    return DetectionRun.objects.filter(detector=detector, trigger=trigger, status=RunStatus.SUCCEEDED).first()


def test_it_runs_a_backfill_queued_by_the_api(celery_worker, team, owner_client):
    dataset = dataset_with_series(team, [series_frame(spikes=SPIKES), series_frame(metric="mem", seed=2)])
    detector = detector_create(dataset=dataset, name="d", algorithm="zscore")
    response = owner_client.post(f"/api/v1/detectors/{detector.pk}/run", {"start": "2024-01-02T00:00:00Z"},
                                 format="json")  # fmt: skip
    assert response.status_code == 202
    run = wait_for(lambda: finished_run(detector, RunTrigger.BACKFILL), celery_worker, "the backfill")
    assert run.series_done == 2 and run.points_scored > 0
    assert run.anomalies_found == Anomaly.objects.filter(detector=detector).count() > 0


def test_it_dispatches_due_detectors_on_the_beat_tick(celery_worker, team):
    dataset = dataset_with_series(team, [series_frame(n=300)])
    detector = detector_create(dataset=dataset, name="d", algorithm="zscore", schedule_interval=timedelta(minutes=5))
    assert detector.next_run_at > timezone.now()  # the first scheduled run is one interval away
    Detector.objects.filter(pk=detector.pk).update(next_run_at=timezone.now())  # ... which has now passed
    tasks.dispatch_due.delay()  # what beat sends every DISPATCH_TICK_SECONDS
    wait_for(lambda: finished_run(detector, RunTrigger.SCHEDULE), celery_worker, "the scheduled run")
    detector.refresh_from_db()
    assert detector.next_run_at > timezone.now() + timedelta(minutes=4)
    tasks.dispatch_due.delay()  # not due again yet: no second run
    time.sleep(2)
    assert DetectionRun.objects.filter(detector=detector, trigger=RunTrigger.SCHEDULE).count() == 1


def test_it_scores_newly_ingested_points_in_realtime(celery_worker, team, owner_client):
    dataset = dataset_with_series(team, [series_frame(n=500)])
    detector = detector_create(dataset=dataset, name="live", algorithm="zscore", realtime=True)
    # The first upload after creation trains nothing new: the detector already watches from the latest point.
    fresh = series_frame(start="2024-01-21T20:00:00Z", n=24, spikes=(12,), seed=9)
    csv = fresh.to_csv(index=False, columns=["metric", "ts", "value"]).encode()
    sent = time.monotonic()
    response = owner_client.post(f"/api/v1/datasets/{dataset.pk}/points", csv, content_type="text/csv")
    assert response.status_code == 201 and response.json()["inserted"] == 24
    anomaly = wait_for(lambda: Anomaly.objects.filter(detector=detector).first(), celery_worker, "realtime scoring")
    latency = time.monotonic() - sent
    assert anomaly.peak_ts == fresh["ts"][12].to_pydatetime()
    run = DetectionRun.objects.get(detector=detector, trigger=RunTrigger.REALTIME)
    assert run.points_scored == 24
    assert latency < 30
