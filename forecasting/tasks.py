"""Celery entry points: thin wrappers around forecasting.services."""

from datetime import datetime

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from forecasting.services import runs, tracking

TRANSIENT = (OperationalError, InterfaceError, ConnectionError)


@shared_task(acks_late=True)
def dispatch_due() -> list[int]:
    return runs.configs_dispatch_due()


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
def forecast_chunk(run_id: int, index: int, series_ids: list[int]) -> None:
    runs.run_chunk(run_id=run_id, index=index, series_ids=series_ids)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def track_actuals(series_ids: list[int], since: str) -> int:
    return tracking.forecasts_track(series_ids=series_ids, since=datetime.fromisoformat(since))
