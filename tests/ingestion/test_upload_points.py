"""POST /api/v1/datasets/{id}/points: formats, timestamps, duplicates, and every refusal."""

import pytest
from django.test import override_settings

from ingestion.models import DuplicatePolicy, IngestBatch, IngestStatus, Series
from tests.ingestion.helpers import make_dataset, points_url, stored

pytestmark = pytest.mark.django_db

CSV = "text/csv"


@pytest.fixture
def dataset(team):
    return make_dataset(team)


def post_csv(client, dataset, text, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.post(points_url(dataset) + (f"?{query}" if query else ""), text.encode(), content_type=CSV)


def test_it_stores_long_csv_rows_with_label_columns(owner_client, dataset):
    response = post_csv(
        owner_client, dataset, "metric,ts,value,host\ncpu,2024-01-01T00:00:00Z,1.5,a\ncpu,2024-01-01T00:00:00Z,7,b\n"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["received"], body["inserted"], body["duplicate"], body["status"]) == (2, 2, 0, "completed")
    assert stored(dataset) == {
        ("cpu", (("host", "a"),), "2024-01-01T00:00:00+00:00"): 1.5,
        ("cpu", (("host", "b"),), "2024-01-01T00:00:00+00:00"): 7.0,
    }


def test_it_reads_every_timestamp_form_as_utc(owner_client, dataset):
    text = (
        "metric,ts,value\n"
        "m,2024-03-01T12:00:00+02:00,1\n"  # offset honoured
        "m,2024-03-01 11:00:00,2\n"  # naive means UTC
        "m,1709294400,3\n"  # epoch seconds: 2024-03-01T12:00:00Z
        "m,1709298000000,4\n"  # epoch milliseconds: 2024-03-01T13:00:00Z
    )
    assert post_csv(owner_client, dataset, text).status_code == 201
    assert sorted(ts for _, _, ts in stored(dataset)) == [
        "2024-03-01T10:00:00+00:00", "2024-03-01T11:00:00+00:00",
        "2024-03-01T12:00:00+00:00", "2024-03-01T13:00:00+00:00",
    ]  # fmt: skip


def test_it_stores_json_long_rows_with_labels(owner_client, dataset):
    rows = [
        {"metric": "latency", "labels": {"region": "eu", "host": "a"}, "ts": "2024-01-01T00:00:00Z", "value": 12},
        {"metric": "latency", "labels": {"host": "a", "region": "eu"}, "ts": 1704067260, "value": 13},
    ]
    response = owner_client.post(points_url(dataset), rows, format="json")
    assert response.status_code == 201, response.json()
    assert Series.objects.filter(dataset=dataset).count() == 1  # label order does not make a new series
    assert Series.objects.get(dataset=dataset).point_count == 2


def test_it_stores_wide_rows_and_skips_empty_cells(owner_client, dataset):
    body = {
        "labels": {"site": "x"},
        "rows": [{"ts": "2024-01-01", "cpu": 1, "mem": 2}, {"ts": "2024-01-02", "cpu": 3, "mem": None}],
    }
    response = owner_client.post(points_url(dataset), body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["inserted"] == 3
    assert sorted({m for m, _, _ in stored(dataset)}) == ["cpu", "mem"]
    assert all(labels == (("site", "x"),) for _, labels, _ in stored(dataset))


def test_it_stores_a_multipart_csv_file(owner_client, dataset):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("data.csv", b"ts,cpu\n2024-01-01,1\n2024-01-02,2\n", content_type=CSV)
    response = owner_client.post(points_url(dataset), {"file": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["filename"] == "data.csv" and response.json()["inserted"] == 2


def test_it_inserts_nothing_when_the_same_data_comes_again(owner_client, dataset):
    text = "metric,ts,value\nm,2024-01-01,1\nm,2024-01-02,2\n"
    post_csv(owner_client, dataset, text)
    again = post_csv(owner_client, dataset, text).json()
    assert (again["inserted"], again["duplicate"]) == (0, 2)
    assert Series.objects.get(dataset=dataset).point_count == 2


def test_it_keeps_the_first_value_by_default(owner_client, dataset):
    post_csv(owner_client, dataset, "metric,ts,value\nm,2024-01-01,1\n")
    body = post_csv(owner_client, dataset, "metric,ts,value\nm,2024-01-01,99\nm,2024-01-02,5\nm,2024-01-02,6\n").json()
    assert (body["inserted"], body["updated"], body["duplicate"]) == (1, 0, 2)
    assert sorted(stored(dataset).values()) == [1.0, 5.0]  # stored value kept; first row of the upload wins


def test_it_overwrites_when_the_dataset_says_so(owner_client, team):
    dataset = make_dataset(team, policy=DuplicatePolicy.OVERWRITE)
    post_csv(owner_client, dataset, "metric,ts,value\nm,2024-01-01,1\nm,2024-01-03,3\n")
    body = post_csv(
        owner_client, dataset, "metric,ts,value\nm,2024-01-01,2\nm,2024-01-03,3\nm,2024-01-02,5\nm,2024-01-02,6\n"
    ).json()
    assert (body["inserted"], body["updated"], body["duplicate"]) == (1, 1, 2)
    assert sorted(stored(dataset).values()) == [2.0, 3.0, 6.0]  # last row of the upload wins


def test_it_counts_points_and_range_on_the_series(owner_client, dataset):
    post_csv(owner_client, dataset, "metric,ts,value\nm,2024-01-05,1\nm,2024-01-06,1\n")
    post_csv(owner_client, dataset, "metric,ts,value\nm,2024-01-01,1\nm,2024-01-06,1\n")  # one older, one repeat
    series = Series.objects.get(dataset=dataset)
    assert series.point_count == 3
    assert (series.first_ts.day, series.last_ts.day) == (1, 6)


def test_it_rejects_a_strict_upload_whole_with_rows_and_fields(owner_client, dataset):
    text = "metric,ts,value\nm,2024-01-01,1\nm,yesterday,2\nm,2024-01-03,abc\n"
    response = post_csv(owner_client, dataset, text)
    assert response.status_code == 400
    body = response.json()
    assert [(e["row"], e["field"], e["value"]) for e in body["errors"]] == [(2, "ts", "yesterday"), (3, "value", "abc")]
    assert stored(dataset) == {}
    assert not Series.objects.filter(dataset=dataset).exists()
    batch = IngestBatch.objects.get(pk=body["batch"]["id"])
    assert (batch.status, batch.received, batch.rejected, batch.inserted) == (IngestStatus.REJECTED, 3, 2, 0)


def test_it_stores_the_valid_rows_in_partial_mode(owner_client, dataset):
    text = "metric,ts,value\nm,2024-01-01,1\nm,2024-01-02,NaN\nm,2024-01-03,3\n"
    response = post_csv(owner_client, dataset, text, mode="partial")
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["inserted"], body["rejected"]) == ("partial", 2, 1)
    assert body["errors"] == [{"row": 2, "field": "value", "message": "not a finite number", "value": "NaN"}]


def test_it_rejects_partial_uploads_with_no_valid_row(owner_client, dataset):
    response = post_csv(owner_client, dataset, "metric,ts,value\nm,never,1\n", mode="partial")
    assert response.status_code == 400 and response.json()["batch"]["status"] == "rejected"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("metric,ts\nm,2024-01-01\n", "value"),
        ("metric,value\nm,1\n", "ts"),
        ("ts,value\n2024-01-01,1\n", "metric"),
    ],
)
def test_it_names_a_missing_column(owner_client, dataset, text, field):
    response = post_csv(owner_client, dataset, text)
    assert response.status_code == 400
    assert field in response.json()["detail"]
    assert IngestBatch.objects.get(dataset=dataset).status == IngestStatus.REJECTED


def test_it_rejects_bad_labels_with_the_row(owner_client, dataset):
    response = post_csv(
        owner_client, dataset, 'metric,ts,value,labels\nm,2024-01-01,1,"{""a"": [1]}"\nm,2024-01-02,1,a=b\n'
    )
    assert response.status_code == 400
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(1, "labels")]


def test_it_refuses_an_empty_body(owner_client, dataset):
    response = owner_client.post(points_url(dataset), b"", content_type=CSV)
    assert response.status_code == 400 and "empty" in response.json()["detail"]
    assert IngestBatch.objects.get(dataset=dataset).status == IngestStatus.REJECTED


def test_it_refuses_a_header_without_rows(owner_client, dataset):
    response = post_csv(owner_client, dataset, "metric,ts,value\n")
    assert response.status_code == 400


def test_it_refuses_an_empty_json_list(owner_client, dataset):
    response = owner_client.post(points_url(dataset), [], format="json")
    assert response.status_code == 400


def test_it_refuses_invalid_json_and_records_it(owner_client, dataset):
    response = owner_client.post(points_url(dataset), b"{nope", content_type="application/json")
    assert response.status_code == 400
    assert IngestBatch.objects.get(dataset=dataset).status == IngestStatus.REJECTED


@override_settings(INGEST_MAX_UPLOAD_BYTES=64)
def test_it_refuses_an_oversized_upload_with_413(owner_client, dataset):
    response = post_csv(owner_client, dataset, "metric,ts,value\n" + "m,2024-01-01,1\n" * 10)
    assert response.status_code == 413
    assert stored(dataset) == {}
    assert IngestBatch.objects.get(dataset=dataset).status == IngestStatus.REJECTED


def test_it_refuses_a_wrong_content_type_with_415(owner_client, dataset):
    response = owner_client.post(points_url(dataset), b"<points/>", content_type="application/xml")
    assert response.status_code == 415
    assert IngestBatch.objects.get(dataset=dataset).status == IngestStatus.REJECTED


def test_it_refuses_a_bad_mode(owner_client, dataset):
    response = post_csv(owner_client, dataset, "metric,ts,value\nm,2024-01-01,1\n", mode="sometimes")
    assert response.status_code == 400 and "mode" in response.json()


def test_it_hides_another_teams_dataset(outsider_client, dataset):
    response = post_csv(outsider_client, dataset, "metric,ts,value\nm,2024-01-01,1\n")
    assert response.status_code == 404
    assert not IngestBatch.objects.exists()


def test_it_refuses_writes_from_a_viewer(client_for, viewer, dataset):
    response = post_csv(client_for(viewer), dataset, "metric,ts,value\nm,2024-01-01,1\n")
    assert response.status_code == 403


def test_it_lets_an_analyst_upload(client_for, teammate, dataset):
    assert post_csv(client_for(teammate), dataset, "metric,ts,value\nm,2024-01-01,1\n").status_code == 201


def test_it_refuses_points_for_a_table_dataset(owner_client, team):
    table = make_dataset(team, name="rows", kind="table")
    response = post_csv(owner_client, table, "metric,ts,value\nm,2024-01-01,1\n")
    assert response.status_code == 400 and "records" in response.json()["detail"]


def test_it_announces_new_points_after_commit(owner_client, dataset, django_capture_on_commit_callbacks):
    from ingestion.signals import points_arrived

    received = []
    handler = lambda sender, **kwargs: received.append(kwargs)  # noqa: E731
    points_arrived.connect(handler)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            post_csv(owner_client, dataset, "metric,ts,value\nm,2024-01-01,1\nm,2024-01-03,2\n")
            post_csv(owner_client, dataset, "metric,ts,value\nm,2024-01-01,1\n")  # nothing new: no event
    finally:
        points_arrived.disconnect(handler)
    assert len(received) == 1
    ((series_id, (first, last)),) = received[0]["series_ranges"].items()
    assert (first.day, last.day) == (1, 3)


def test_it_recognises_resent_microsecond_timestamps(owner_client, dataset):
    text = "metric,ts,value\nm,2024-01-01T00:00:00.123457Z,1\nm,2024-01-01T00:00:00.999999Z,2\n"
    post_csv(owner_client, dataset, text)
    again = post_csv(owner_client, dataset, text).json()
    assert (again["status"], again["inserted"], again["duplicate"]) == ("completed", 0, 2)


def test_it_fills_a_gap_in_history_and_overwrites_changed_values(owner_client, team):
    dataset = make_dataset(team, policy=DuplicatePolicy.OVERWRITE)
    post_csv(owner_client, dataset, "metric,ts,value\nm,2024-01-01,1\nm,2024-01-03,3\nm,2024-01-05,5\n")
    body = post_csv(owner_client, dataset, "metric,ts,value\nm,2024-01-02,2\nm,2024-01-03,30\nm,2024-01-05,5\n").json()
    assert (body["inserted"], body["updated"], body["duplicate"]) == (1, 1, 1)
    assert sorted(stored(dataset).values()) == [1.0, 2.0, 5.0, 30.0]
    series = Series.objects.get(dataset=dataset)
    assert (series.point_count, series.first_ts.day, series.last_ts.day) == (4, 1, 5)


@pytest.mark.parametrize("policy", [DuplicatePolicy.KEEP_FIRST, DuplicatePolicy.OVERWRITE])
def test_it_checks_a_few_old_points_against_a_long_history(owner_client, team, policy):
    """Four points re-sent across 20,000 stored ones: probed one by one instead of reading the span."""
    dataset = make_dataset(team, policy=policy)
    rows = "".join(f"m,{1704067200 + 60 * i},{i}\n" for i in range(20_000))
    post_csv(owner_client, dataset, "metric,ts,value\n" + rows)
    resent = (
        f"metric,ts,value\nm,{1704067200},0\nm,{1704067200 + 60 * 10_000},-1\nm,{1704067200 + 30},7\n"
        f"m,{1704067200 + 60 * 19_999},19999\n"
    )
    body = post_csv(owner_client, dataset, resent).json()
    updated = 1 if policy == DuplicatePolicy.OVERWRITE else 0
    assert (body["inserted"], body["updated"], body["duplicate"]) == (1, updated, 3 - updated)
    assert Series.objects.get(dataset=dataset).point_count == 20_001


def test_it_refuses_points_dated_in_the_future_row_by_row(owner_client, dataset):
    text = "metric,ts,value\ncpu,2024-01-01T00:00:00Z,1\ncpu,2999-01-01T00:00:00Z,2\n"
    response = post_csv(owner_client, dataset, text, mode="partial")
    assert response.status_code == 201
    body = response.json()
    assert (body["inserted"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["row"] == 2 and "future" in body["errors"][0]["message"]
    assert Series.objects.get(dataset=dataset).last_ts.year == 2024
