"""The sweep takes back uploads whose process died: a killed worker left its asynchronous batch in
"processing" for good (the redelivered task's claim found it taken); a dead web process or database left a
synchronous one there. And it sends again batches whose message the broker lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ingestion.models import IngestBatch, IngestSource, IngestStatus, Point
from ingestion.services import ingest_batch_process, ingest_batch_start, ingest_batches_requeue, ingest_enqueue
from tests.ingestion.helpers import make_dataset

pytestmark = pytest.mark.django_db
CSV = b"metric,ts,value\ncpu,2024-01-01T00:00:00Z,1\ncpu,2024-01-01T00:01:00Z,2\n"


def _sweep():
    return ingest_batches_requeue(queued_for=timedelta(minutes=5), processing_for=timedelta(hours=1))


def _enqueued(dataset) -> IngestBatch:
    return ingest_enqueue(dataset=dataset, target="points", payload=CSV, content_type="text/csv",
                          source=IngestSource.API_CSV)  # fmt: skip


def test_it_queues_again_an_async_batch_whose_worker_died(team):
    dataset = make_dataset(team)
    batch = _enqueued(dataset)  # a worker claims it, then is killed before its load commits:
    IngestBatch.objects.filter(pk=batch.pk).update(
        status=IngestStatus.PROCESSING, started_at=timezone.now() - timedelta(hours=2)
    )
    assert ingest_batch_process(batch_id=batch.pk) is None  # the redelivered task: claimed already

    assert _sweep() == {"sent": 1, "revived": 1, "failed": 0}
    done = ingest_batch_process(batch_id=batch.pk)  # the task the sweep sent
    assert done.status == IngestStatus.COMPLETED and done.inserted == 2
    assert Point.objects.filter(series__dataset=dataset).count() == 2


def test_it_fails_a_sync_batch_whose_request_died_and_spares_recent_ones(team):
    dataset = make_dataset(team)
    dead = ingest_batch_start(dataset=dataset, target="points", source=IngestSource.API_CSV)
    IngestBatch.objects.filter(pk=dead.pk).update(started_at=timezone.now() - timedelta(hours=2))
    alive = ingest_batch_start(dataset=dataset, target="points", source=IngestSource.API_CSV)

    assert _sweep() == {"sent": 0, "revived": 0, "failed": 1}
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == IngestStatus.FAILED and "nothing was stored" in dead.message
    assert alive.status == IngestStatus.PROCESSING


def test_it_sends_again_a_batch_queued_too_long(team):
    dataset = make_dataset(team)
    old, recent = _enqueued(dataset), _enqueued(dataset)
    IngestBatch.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(minutes=10))

    assert _sweep() == {"sent": 1, "revived": 0, "failed": 0}
    assert recent.pk != old.pk
