"""A Celery worker process killed in the middle of a detection run: the run completes on redelivery, with
no anomaly stored twice and every count right.

Tasks are acks_late with reject_on_worker_lost: a chunk whose process dies goes back to the queue. A chunk's
anomalies and its counts commit together, so a chunk cut short leaves neither.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pandas as pd
import psutil
import pytest

from detectors.models import Anomaly, DetectionRun, RunStatus, RunTrigger
from detectors.services import runs
from detectors.services.configs import detector_create
from tests.celery_worker import WorkerProcess, worker_env
from tests.detectors.helpers import load, utc
from tests.ingestion.helpers import make_dataset

SERIES, POINTS = 150, 800  # three chunks of 50 series


def _many_series(team):
    rng = np.random.default_rng(5)
    ts = pd.date_range("2024-01-01", periods=POINTS, freq="h", tz="UTC")
    frames = []
    for i in range(SERIES):
        values = 10 + np.sin(np.arange(POINTS) * 2 * np.pi / 24) + rng.normal(0, 0.3, POINTS)
        values[rng.integers(300, POINTS, 3)] += 8
        frames.append(pd.DataFrame({"metric": f"m{i:03d}", "ts": ts, "value": values}))
    dataset = make_dataset(team, name="many")
    load(dataset, pd.concat(frames, ignore_index=True))
    return dataset


def _backfill(detector, **kwargs) -> DetectionRun:
    return runs.run_create(detector=detector, trigger=RunTrigger.BACKFILL, start=utc("2024-01-10"), **kwargs)


@pytest.mark.django_db
def test_it_counts_the_anomalies_of_a_chunk_that_crashed_before_counting(team, monkeypatch):
    dataset = _many_series(team)
    reference = detector_create(dataset=dataset, name="reference", algorithm="zscore")
    expected = runs.run_execute(run=_backfill(reference))
    detector = detector_create(dataset=dataset, name="crashes once", algorithm="zscore")
    run = _backfill(detector)
    chunks = runs.run_plan(run=run)
    real_count = runs._count_chunk

    def crash(*args):
        raise OSError("worker killed")

    monkeypatch.setattr(runs, "_count_chunk", crash)
    with pytest.raises(OSError):
        runs.run_chunk(run_id=run.pk, index=0, series_ids=chunks[0])
    monkeypatch.setattr(runs, "_count_chunk", real_count)
    for index, chunk in enumerate(chunks):  # the redelivered chunk, then the others
        runs.run_chunk(run_id=run.pk, index=index, series_ids=chunk)
    runs.run_chunk(run_id=run.pk, index=1, series_ids=chunks[1])  # redelivered after it was counted

    run.refresh_from_db()
    stored = Anomaly.objects.filter(detector=detector).count()
    assert run.status == RunStatus.SUCCEEDED and run.chunks_done == 3 and run.series_done == SERIES
    assert run.anomalies_found == stored == expected.anomalies_found > 0
    assert run.points_scored == expected.points_scored


@pytest.fixture
def prefork_worker(django_db_setup):
    """A worker whose task runs in a child process (as in production), on a queue of its own."""
    queue = f"faults-{os.getpid()}"
    worker = WorkerProcess(worker_env(), name=f"faults-{os.getpid()}@%h", queues=queue, pool="prefork")
    worker.wait_ready(60)
    yield worker, queue
    worker.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_completes_a_run_whose_worker_process_was_killed(team, prefork_worker):
    worker, queue = prefork_worker
    dataset = _many_series(team)
    reference = runs.run_execute(run=_backfill(detector_create(dataset=dataset, name="ref", algorithm="zscore")))
    detector = detector_create(dataset=dataset, name="killed", algorithm="zscore")
    run = runs.run_enqueue(run=_backfill(detector), queue=queue)

    _wait(lambda: DetectionRun.objects.get(pk=run.pk).chunks_done >= 1, worker, "the first chunk")
    _wait(lambda: _received(worker) >= 2, worker, "the second chunk's start")
    time.sleep(0.4)  # a chunk takes over a second: the child is in the middle of it
    child = psutil.Process(worker.process.pid).children()[0]
    os.kill(child.pid, signal.SIGKILL)  # as the OOM killer would
    _wait(lambda: DetectionRun.objects.get(pk=run.pk).status != RunStatus.RUNNING, worker, "the run")

    run.refresh_from_db()
    assert _received(worker) > 3, worker.output()  # the chunk in flight was delivered again
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.chunks_done, run.series_done, run.points_scored) == (3, SERIES, reference.points_scored)
    assert run.anomalies_found == Anomaly.objects.filter(detector=detector).count() == reference.anomalies_found


def _received(worker) -> int:
    return sum("score_chunk[" in line and " received" in line for line in worker.lines)


def _wait(condition, worker, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not finish within {timeout} s:\n{worker.output()}")
        time.sleep(0.1)
