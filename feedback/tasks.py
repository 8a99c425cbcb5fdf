"""Celery entry points: thin wrappers around feedback.services."""

from datetime import datetime

from celery import shared_task

from common.tasks import TRANSIENT
from feedback.services import retraining


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def retrain(retraining_id: int) -> str:
    return retraining.retraining_run(retraining_id=retraining_id).status


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def rebaseline(detector_id: int, series_id: int, since: str) -> int | None:
    return retraining.rebaseline(detector_id=detector_id, series_id=series_id, since=datetime.fromisoformat(since))


@shared_task(acks_late=True)
def retrain_scheduled() -> list[int]:
    return [r.pk for r in retraining.retrainings_scheduled()]
