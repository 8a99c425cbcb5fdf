"""The broker goes down while uploads continue, then comes back.

Synchronous uploads are stored (201) and their series stay pending for realtime detection; asynchronous
ones are accepted (202) and kept queued in PostgreSQL with their payload. When the broker is back, the
beat's ticks send what was left: the queued upload loads and the realtime detector scores the points that
arrived meanwhile. A private redis-server is the broker here, so stopping it touches no one else.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager

import kombu.pools
import pytest

from config.celery import app as celery_app
from detectors.models import Anomaly, DetectionRun, RunTrigger, SeriesCursor
from detectors.services import runs
from detectors.services.configs import detector_create
from ingestion.models import IngestBatch, IngestStatus, Point, Series
from tests.celery_worker import WorkerProcess, worker_env
from tests.detectors.helpers import dataset_with_series, series_frame

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server on PATH"),
]


class PrivateRedis:
    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@contextmanager
def app_broker(url: str):
    """Point this process's Celery app (what the API sends with) at url."""

    def use(value):
        celery_app.conf.broker_url = celery_app.conf.broker_write_url = value
        kombu.pools.reset()  # connections and producers are pooled per URL, process-wide
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    previous = celery_app.conf.broker_url
    use(url)
    try:
        yield
    finally:
        use(previous)


@pytest.fixture
def broker():
    redis = PrivateRedis()
    redis.start()
    env = worker_env() | {"CELERY_BROKER_URL": redis.url, "INGEST_REQUEUE_SECONDS": "0"}
    worker = WorkerProcess(env, name=f"outage-{os.getpid()}@%h")
    worker.wait_ready(60)
    with app_broker(redis.url):
        yield redis, worker
    worker.stop()
    redis.stop()


def _csv(frame) -> bytes:
    return frame.to_csv(index=False, columns=["metric", "ts", "value"]).encode()


def test_it_stores_uploads_while_the_broker_is_down_and_catches_up_when_it_returns(broker, team, owner_client):
    redis, worker = broker
    dataset = dataset_with_series(team, [series_frame(n=500)])
    detector = detector_create(dataset=dataset, name="live", algorithm="zscore", realtime=True)
    series_ids = list(Series.objects.filter(dataset=dataset).values_list("pk", flat=True))
    runs.realtime_mark_pending(dataset_id=dataset.pk, series_ids=series_ids)
    runs.realtime_score_pending(detector_id=detector.pk)  # watches from its latest point on
    url = f"/api/v1/datasets/{dataset.pk}/points"

    redis.stop()
    sync = owner_client.post(url, _csv(series_frame(start="2024-01-21T20:00:00Z", n=24, spikes=(12,), seed=9)),
                             content_type="text/csv")  # fmt: skip
    queued = owner_client.post(f"{url}?async=true", _csv(series_frame(start="2024-01-22T20:00:00Z", n=24, seed=8)),
                               content_type="text/csv")  # fmt: skip

    assert sync.status_code == 201 and sync.json()["inserted"] == 24
    assert queued.status_code == 202 and queued.json()["status"] == IngestStatus.QUEUED
    assert SeriesCursor.objects.get(detector=detector).pending is True
    assert Point.objects.filter(series__dataset=dataset).count() == 524

    redis.start()
    from detectors.tasks import dispatch_due
    from ingestion.tasks import requeue_stale

    batch = IngestBatch.objects.get(pk=queued.json()["id"])
    deadline = time.monotonic() + 90
    while not (batch.status == IngestStatus.COMPLETED and Anomaly.objects.filter(detector=detector).exists()):
        assert time.monotonic() < deadline, f"no catch-up within 90 s:\n{worker.output()}"
        requeue_stale.delay()  # what beat sends every minute, and every DISPATCH_TICK_SECONDS
        dispatch_due.delay()
        time.sleep(2)
        batch.refresh_from_db()

    assert Point.objects.filter(series__dataset=dataset).count() == 548
    assert batch.inserted == 24
    anomaly = Anomaly.objects.get(detector=detector)
    assert anomaly.peak_ts.isoformat().startswith("2024-01-22T08:00")
    assert DetectionRun.objects.filter(detector=detector, trigger=RunTrigger.REALTIME).count() >= 2


def test_a_run_asked_for_while_the_broker_is_down_is_a_503_and_a_failed_run(team, owner_client):
    redis = PrivateRedis()
    redis.start()
    dataset = dataset_with_series(team, [series_frame(n=300)])
    detector = detector_create(dataset=dataset, name="d", algorithm="zscore")
    with app_broker(redis.url):
        redis.stop()
        response = owner_client.post(f"/api/v1/detectors/{detector.pk}/run", {}, format="json")
    assert response.status_code == 503 and response["Retry-After"]
    assert "broker" in response.json()["detail"]
    run = DetectionRun.objects.get(detector=detector)
    assert run.status == "failed" and "broker" in run.error
