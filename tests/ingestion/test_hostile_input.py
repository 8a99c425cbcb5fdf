"""Hostile uploads: each is refused with 400 and a rejected batch, never a 500 or a batch left processing."""

from datetime import UTC, datetime
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from ingestion import services
from ingestion.models import IngestBatch, IngestStatus, Series
from tests.ingestion.helpers import make_dataset, points_url, stored

pytestmark = pytest.mark.django_db

CSV = "text/csv"


@pytest.fixture
def dataset(team):
    return make_dataset(team)


@pytest.fixture
def table(team):
    return make_dataset(team, name="transactions", kind="table")


def assert_refused(response, dataset, field=None):
    assert response.status_code == 400, response.content[:500]
    body = response.json()
    batch = IngestBatch.objects.get(pk=body["batch"]["id"])
    assert batch.status == IngestStatus.REJECTED and batch.message
    if field is not None:
        assert field in {e["field"] for e in body["errors"]}, body["errors"]
    return body


def test_it_refuses_a_label_value_too_long_for_the_index(owner_client, dataset):
    rows = [{"metric": "m", "labels": {"host": "x" * 4096}, "ts": "2024-01-01T00:00:00Z", "value": 1}]
    body = assert_refused(owner_client.post(points_url(dataset), rows, format="json"), dataset, "labels")
    assert body["errors"][0]["row"] == 1
    assert not Series.objects.filter(dataset=dataset).exists()


@override_settings(INGEST_MAX_LABELS=2)
def test_it_refuses_too_many_labels(owner_client, dataset):
    rows = [{"metric": "m", "labels": {"a": 1, "b": 2, "c": 3}, "ts": "2024-01-01T00:00:00Z", "value": 1}]
    assert_refused(owner_client.post(points_url(dataset), rows, format="json"), dataset, "labels")


def test_it_refuses_a_label_key_too_long(owner_client, dataset):
    rows = [{"metric": "m", "labels": {"k" * 500: "v"}, "ts": "2024-01-01T00:00:00Z", "value": 1}]
    assert_refused(owner_client.post(points_url(dataset), rows, format="json"), dataset, "labels")


@pytest.mark.parametrize(
    "row",
    [
        {"metric": "m\x00", "ts": "2024-01-01T00:00:00Z", "value": 1},
        {"metric": "m", "labels": {"host": "a\x00b"}, "ts": "2024-01-01T00:00:00Z", "value": 1},
        {"metric": "m", "labels": {"ho\x00st": "a"}, "ts": "2024-01-01T00:00:00Z", "value": 1},
        {"metric": "m", "host": "a\x00", "ts": "2024-01-01T00:00:00Z", "value": 1},
    ],
)
def test_it_refuses_a_nul_character_in_a_metric_or_label(owner_client, dataset, row):
    assert_refused(owner_client.post(points_url(dataset), [row], format="json"), dataset)


def test_it_refuses_a_nul_character_in_a_wide_metric_column(owner_client, dataset):
    response = owner_client.post(points_url(dataset), [{"ts": "2024-01-01", "c\x00pu": 1}], format="json")
    assert_refused(response, dataset)


def test_it_refuses_a_nul_character_in_the_labels_parameter(owner_client, dataset):
    response = owner_client.post(
        points_url(dataset) + "?labels=%7B%22a%22%3A%22%5Cu0000%22%7D", [{"ts": "2024-01-01", "cpu": 1}], format="json"
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "ts", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999999Z", "0999-12-31"]
)
def test_it_refuses_timestamps_outside_the_range_row_by_row(owner_client, dataset, ts):
    text = f"metric,ts,value\nm,2024-01-01,1\nm,{ts},2\n"
    response = owner_client.post(points_url(dataset), text.encode(), content_type=CSV)
    body = assert_refused(response, dataset, "ts")
    assert [e["row"] for e in body["errors"]] == [2]
    assert stored(dataset) == {}


def test_it_refuses_json_nested_too_deep_and_records_it(owner_client, dataset):
    deep = b"[" * 100_000 + b"]" * 100_000
    response = owner_client.post(points_url(dataset), deep, content_type="application/json")
    assert response.status_code == 400
    assert IngestBatch.objects.get(dataset=dataset).status == IngestStatus.REJECTED


def test_it_refuses_an_external_id_too_long(owner_client, table):
    rows = [{"external_id": "x" * 201, "amount": 1}, {"external_id": "ok", "amount": 2}]
    body = assert_refused(owner_client.post(f"/api/v1/datasets/{table.pk}/records", rows, format="json"), table)
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(1, "external_id")]


def test_it_refuses_a_nul_character_in_a_record(owner_client, table):
    rows = [{"external_id": "a\x00", "amount": 1}, {"external_id": "b", "note": "x\x00y"}]
    body = assert_refused(owner_client.post(f"/api/v1/datasets/{table.pk}/records", rows, format="json"), table)
    assert [e["row"] for e in body["errors"]] == [1, 2]


def queued(dataset, payload: bytes, content_type=CSV) -> IngestBatch:
    return IngestBatch.objects.create(
        dataset=dataset, target="points", source="api_csv", status=IngestStatus.QUEUED,
        content_type=content_type, payload=payload,
    )  # fmt: skip


def test_a_failing_worker_rejects_the_batch_with_the_reason(dataset):
    batch = queued(dataset, b"metric,ts,value\nm,2024-01-01,1\n")
    with mock.patch("ingestion.services.PointLoader.load", side_effect=RuntimeError("disk on fire")):
        services.ingest_batch_process(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == IngestStatus.REJECTED
    assert "RuntimeError" in batch.message and batch.payload is None


def test_a_worker_given_deep_json_rejects_the_batch(dataset):
    batch = queued(dataset, b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
    services.ingest_batch_process(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == IngestStatus.REJECTED


def test_a_worker_given_hostile_rows_rejects_the_batch(dataset):
    batch = queued(dataset, ("metric,ts,value,host\nm,2024-01-01,1," + "x" * 4096 + "\n").encode())
    services.ingest_batch_process(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == IngestStatus.REJECTED


def test_a_series_at_the_end_of_time_still_reads(owner_client, dataset):
    end = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    series = Series.objects.create(dataset=dataset, metric="m", point_count=1, first_ts=end, last_ts=end)
    assert owner_client.get(f"/api/v1/series?dataset={dataset.pk}").status_code == 200
    assert owner_client.get(f"/api/v1/series/{series.pk}").status_code == 200
    assert owner_client.get(f"/api/v1/datasets/{dataset.pk}/summary").status_code == 200
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-root"))
    assert admin.get("/admin/ingestion/series/").status_code == 200
    assert admin.get(f"/admin/ingestion/series/{series.pk}/change/").status_code == 200


def test_a_point_at_the_end_of_time_does_not_break_reads_or_runs(owner_client, dataset):
    from detectors.models import RunStatus, RunTrigger
    from detectors.services.configs import detector_create
    from detectors.services.runs import run_create, run_execute
    from ingestion.models import Point

    end = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    rows = [{"metric": "m", "ts": f"2024-01-01T{h:02d}:00:00Z", "value": h % 5} for h in range(24)]
    assert owner_client.post(points_url(dataset), rows, format="json").status_code == 201
    series = Series.objects.get(dataset=dataset)
    Point.objects.create(series=series, ts=end, value=1)
    Series.objects.filter(pk=series.pk).update(point_count=25, last_ts=end)
    assert owner_client.get(f"/api/v1/series?dataset={dataset.pk}").status_code == 200
    assert owner_client.get(f"/api/v1/datasets/{dataset.pk}/summary").status_code == 200
    assert owner_client.get(f"/api/v1/series/{series.pk}/points?resample=1h").status_code == 200
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-root"))
    assert admin.get(f"/admin/ingestion/series/{series.pk}/change/").status_code == 200
    detector = detector_create(dataset=dataset, name="d", algorithm="zscore")
    run = run_execute(run=run_create(detector=detector, trigger=RunTrigger.MANUAL))
    assert run.status == RunStatus.SUCCEEDED, run.error
    run = run_execute(run=run_create(detector=detector, trigger=RunTrigger.MANUAL))
    assert run.status == RunStatus.SUCCEEDED, run.error


@override_settings(INGEST_MAX_ROWS=3)
def test_it_refuses_an_upload_with_too_many_rows(owner_client, dataset, table):
    text = "metric,ts,value\n" + "".join(f"m,2024-01-0{d},1\n" for d in range(1, 5))
    body = assert_refused(owner_client.post(points_url(dataset), text.encode(), content_type=CSV), dataset)
    assert "INGEST_MAX_ROWS" in body["detail"]
    rows = [{"external_id": str(i), "amount": i} for i in range(4)]
    assert_refused(owner_client.post(f"/api/v1/datasets/{table.pk}/records", rows, format="json"), table)


@override_settings(INGEST_MAX_SERIES=2)
def test_it_refuses_an_upload_touching_too_many_series(owner_client, dataset):
    text = "metric,ts,value\na,2024-01-01,1\nb,2024-01-01,1\nc,2024-01-01,1\n"
    body = assert_refused(owner_client.post(points_url(dataset), text.encode(), content_type=CSV), dataset)
    assert "INGEST_MAX_SERIES" in body["detail"] and not Series.objects.filter(dataset=dataset).exists()
