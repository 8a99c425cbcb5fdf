"""Celery entry points: thin wrappers around detectors.services."""

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from detectors.services import modelling, runs

TRANSIENT = (OperationalError, InterfaceError, ConnectionError)


@shared_task(acks_late=True)
def dispatch_due() -> list[int]:
    return runs.detectors_dispatch_due()


class ChunkTask(Task):
    """A chunk that fails for good (retries spent, a bug, out of time) fails its run, visibly."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        run_id, index = args[0], args[1]
        reason = "ran out of time" if isinstance(exc, SoftTimeLimitExceeded) else f"{type(exc).__name__}: {exc}"
        runs.run_fail(run_id=run_id, error=f"chunk {index} failed: {reason}")


@shared_task(
    base=ChunkTask, acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT, time_limit=settings.CELERY_TASK_TIME_LIMIT,
)  # fmt: skip
def score_chunk(run_id: int, index: int, series_ids: list[int]) -> None:
    runs.run_chunk(run_id=run_id, index=index, series_ids=series_ids)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def score_pending(detector_id: int) -> None:
    runs.realtime_score_pending(detector_id=detector_id)


def wake_realtime(detector_ids: list[int]) -> None:
    for detector_id in detector_ids:
        score_pending.apply_async((detector_id,), countdown=settings.REALTIME_COALESCE_SECONDS)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def train_detector(detector_id: int) -> int:
    from detectors.models import Detector

    return modelling.detector_train(detector=Detector.objects.get(pk=detector_id))
