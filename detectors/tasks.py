"""Celery entry points: thin wrappers around detectors.services."""

import ctypes
from datetime import datetime

from celery import shared_task
from celery.signals import worker_init
from django.conf import settings
from django.utils import timezone

from common.tasks import TRANSIENT, ChunkTask, send_or_defer
from detectors.services import modelling, runs


@worker_init.connect
def prepare_worker(**_) -> None:
    """Import every algorithm (scikit-learn, statsmodels) before the first task, not during it, and keep
    numerical libraries to one thread: a host runs one worker process per core, and threads on top of
    that only fight over the same cores."""
    from threadpoolctl import threadpool_limits

    from detectors.algorithms.registry import algorithm_keys, get_algorithm

    for key in algorithm_keys():
        get_algorithm(key)
    threadpool_limits(limits=settings.WORKER_MATH_THREADS)
    _keep_freed_memory()


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def _keep_freed_memory() -> None:
    """Scoring allocates and frees arrays of a few MB per series. By default glibc hands each back to the
    kernel and page-faults it in again on the next allocation, which cost a worker a third of its time
    in `manage.py bench detect`; keep such blocks in the process heap instead (glibc only)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024)
    libc.mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024)


@shared_task(acks_late=True)
def dispatch_due() -> list[int]:
    # Series left pending (their wake-up was lost: broker down, worker gone) are woken on every tick.
    wake_realtime(runs.realtime_pending_detectors())
    return runs.detectors_dispatch_due()


class ScoreChunkTask(ChunkTask):
    fail_run = staticmethod(runs.run_fail)


@shared_task(
    base=ScoreChunkTask, acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT, time_limit=settings.CELERY_TASK_TIME_LIMIT,
)  # fmt: skip
def score_chunk(run_id: int, index: int, series_ids: list[int]) -> None:
    runs.run_chunk(run_id=run_id, index=index, series_ids=series_ids)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def score_pending(detector_id: int) -> None:
    runs.realtime_score_pending(detector_id=detector_id)


def wake_realtime(detector_ids: list[int]) -> None:
    for detector_id in detector_ids:  # with the broker down, the series stay pending for the next tick
        send_or_defer(score_pending, (detector_id,), countdown=settings.REALTIME_COALESCE_SECONDS)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def train_detector(detector_id: int, requested_at: str) -> int:
    from detectors.models import Detector

    detector = Detector.objects.get(pk=detector_id)
    return modelling.detector_train(detector=detector, requested_at=datetime.fromisoformat(requested_at))


def request_training(detector_id: int) -> None:
    """Queue a retraining; the request time makes a redelivered task train nothing twice."""
    train_detector.delay_on_commit(detector_id, timezone.now().isoformat())
