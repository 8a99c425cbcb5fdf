from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from ingestion import services


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def ingest_batch_process(batch_id: int) -> None:
    services.ingest_batch_process(batch_id=batch_id)


@shared_task(acks_late=True)
def requeue_stale() -> dict[str, int]:
    return services.ingest_batches_requeue(
        queued_for=timedelta(seconds=settings.INGEST_REQUEUE_SECONDS),
        processing_for=timedelta(seconds=settings.INGEST_STALE_SECONDS),
    )
