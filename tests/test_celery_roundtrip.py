"""The asynchronous path for real: the API queues an upload, a real Celery worker loads it."""

from __future__ import annotations

import time

import pytest

from ingestion.models import Dataset, DatasetKind, Point

POLL_TIMEOUT_S = 30


def _wait_for_batch(client, batch_id: int) -> dict:
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        body = client.get(f"/api/v1/batches/{batch_id}").json()
        if body["status"] not in {"queued", "processing"} or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_loads_an_async_upload_on_a_real_worker(celery_worker, team, owner_client):
    dataset = Dataset.objects.create(team=team, name="checkout latency", kind=DatasetKind.TIMESERIES)
    rows = [{"metric": "latency_ms", "ts": f"2026-01-01T00:0{n}:00Z", "value": 100.0 + n} for n in range(5)]

    response = owner_client.post(f"/api/v1/datasets/{dataset.pk}/points?async=true", rows, format="json")

    assert response.status_code == 202, response.content
    body = _wait_for_batch(owner_client, response.json()["id"])
    assert body["status"] == "completed", f"{body}\nworker output:\n{celery_worker.output()}"
    assert (body["received"], body["inserted"], body["rejected"]) == (5, 5, 0)
    assert Point.objects.filter(series__dataset=dataset).count() == 5
