from celery import shared_task
from django.db import OperationalError

from ingestion import services


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def ingest_batch_process(batch_id: int) -> None:
    services.ingest_batch_process(batch_id=batch_id)
