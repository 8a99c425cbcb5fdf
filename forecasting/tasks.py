"""Celery entry points: thin wrappers around forecasting.services."""

from datetime import datetime

from celery import shared_task
from django.conf import settings

from common.tasks import TRANSIENT, ChunkTask
from forecasting.services import runs, tracking


@shared_task(acks_late=True)
def dispatch_due() -> list[int]:
    return runs.configs_dispatch_due()


class ForecastChunkTask(ChunkTask):
    fail_run = staticmethod(runs.run_fail)


@shared_task(
    base=ForecastChunkTask, acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT, time_limit=settings.CELERY_TASK_TIME_LIMIT,
)  # fmt: skip
def forecast_chunk(run_id: int, index: int, series_ids: list[int]) -> None:
    runs.run_chunk(run_id=run_id, index=index, series_ids=series_ids)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def track_actuals(series_ids: list[int], since: str) -> int:
    return tracking.forecasts_track(series_ids=series_ids, since=datetime.fromisoformat(since))
