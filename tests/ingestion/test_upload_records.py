"""POST /api/v1/datasets/{id}/records: table rows with features, external ids and duplicates."""

import pytest

from ingestion.models import DuplicatePolicy, IngestBatch, Record
from tests.ingestion.helpers import make_dataset

pytestmark = pytest.mark.django_db


def url(dataset):
    return f"/api/v1/datasets/{dataset.pk}/records"


@pytest.fixture
def table(team):
    return make_dataset(team, name="transactions", kind="table")


def test_it_stores_json_records_with_features(owner_client, table):
    rows = [
        {"external_id": "t1", "ts": "2024-01-01T10:00:00+01:00", "amount": 12.5, "country": "FR"},
        {"external_id": "t2", "features": {"amount": 900, "country": "US"}},
    ]
    response = owner_client.post(url(table), rows, format="json")
    assert response.status_code == 201, response.json()
    first, second = Record.objects.filter(dataset=table).order_by("external_id")
    assert first.features == {"amount": 12.5, "country": "FR"} and first.ts.hour == 9
    assert second.features == {"amount": 900, "country": "US"} and second.ts is None


def test_it_stores_csv_records_with_numbers_as_numbers(owner_client, table):
    text = b"id,amount,country\nA,1.5,FR\nB,2,DE\n"
    assert owner_client.post(url(table), text, content_type="text/csv").status_code == 201
    assert Record.objects.get(external_id="A").features == {"amount": 1.5, "country": "FR"}


def test_it_skips_known_external_ids_by_default(owner_client, table):
    owner_client.post(url(table), [{"external_id": "t1", "amount": 1}], format="json")
    body = owner_client.post(url(table), [{"external_id": "t1", "amount": 2}, {"amount": 3}], format="json").json()
    assert (body["inserted"], body["duplicate"]) == (1, 1)
    assert Record.objects.get(external_id="t1").features == {"amount": 1}


def test_it_overwrites_known_external_ids_when_asked(owner_client, team):
    table = make_dataset(team, name="t", kind="table", policy=DuplicatePolicy.OVERWRITE)
    owner_client.post(url(table), [{"external_id": "t1", "amount": 1}], format="json")
    body = owner_client.post(url(table), [{"external_id": "t1", "amount": 2}], format="json").json()
    assert (body["inserted"], body["updated"]) == (0, 1)
    assert Record.objects.get(external_id="t1").features == {"amount": 2}


def test_it_rejects_bad_timestamps_in_strict_mode(owner_client, table):
    rows = [{"external_id": "a", "ts": "2024-01-01", "x": 1}, {"external_id": "b", "ts": "soon", "x": 2}]
    response = owner_client.post(url(table), rows, format="json")
    assert response.status_code == 400
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(2, "ts")]
    assert not Record.objects.exists()


def test_it_stores_the_valid_records_in_partial_mode(owner_client, table):
    rows = [{"x": 1}, {"external_id": "only-id"}, {"x": 3}]
    response = owner_client.post(url(table) + "?mode=partial", rows, format="json")
    assert response.status_code == 201
    assert (response.json()["inserted"], response.json()["rejected"]) == (2, 1)
    assert response.json()["errors"][0]["row"] == 2


def test_it_refuses_records_for_a_series_dataset(owner_client, team):
    series_dataset = make_dataset(team)
    assert owner_client.post(url(series_dataset), [{"x": 1}], format="json").status_code == 400
    assert IngestBatch.objects.filter(dataset=series_dataset).count() == 0


def test_it_hides_another_teams_table(outsider_client, table):
    assert outsider_client.post(url(table), [{"x": 1}], format="json").status_code == 404
