"""GET /api/v1/series: team scoping and the dataset, metric and label filters."""

from __future__ import annotations

import pytest

from ingestion.models import Dataset, Series
from ingestion.selectors import series_list


@pytest.fixture
def data(team, other_team):
    web = Dataset.objects.create(team=team, name="web")
    db = Dataset.objects.create(team=team, name="db")
    theirs = Dataset.objects.create(team=other_team, name="web")
    return {
        "cpu_a": Series.objects.create(dataset=web, metric="cpu", labels={"host": "a", "region": "eu"}),
        "cpu_b": Series.objects.create(dataset=web, metric="cpu", labels={"host": "b", "region": "us"}),
        "mem_a": Series.objects.create(dataset=web, metric="mem", labels={"host": "a", "region": "eu"}),
        "qps": Series.objects.create(dataset=db, metric="qps", labels={}),
        "theirs": Series.objects.create(dataset=theirs, metric="cpu", labels={"host": "a"}),
        "web": web,
        "db": db,
    }


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_it_lists_the_teams_series_with_counters(client_for, viewer, data):
    response = client_for(viewer).get("/api/v1/series")
    assert ids(response) == {data[k].pk for k in ("cpu_a", "cpu_b", "mem_a", "qps")}
    row = next(r for r in response.json()["results"] if r["id"] == data["cpu_a"].pk)
    assert row == {
        "id": data["cpu_a"].pk,
        "dataset": data["web"].pk,
        "metric": "cpu",
        "labels": {"host": "a", "region": "eu"},
        "point_count": 0,
        "first_ts": None,
        "last_ts": None,
    }


def test_it_shows_an_outsider_only_their_own_series(outsider_client, data):
    assert ids(outsider_client.get("/api/v1/series")) == {data["theirs"].pk}
    assert ids(outsider_client.get(f"/api/v1/series?dataset={data['web'].pk}")) == set()
    assert outsider_client.get(f"/api/v1/series/{data['cpu_a'].pk}").status_code == 404


def test_it_retrieves_one_series(client_for, teammate, data):
    response = client_for(teammate).get(f"/api/v1/series/{data['qps'].pk}")
    assert response.status_code == 200
    assert response.json()["metric"] == "qps"


def test_it_is_read_only(client_for, owner, data):
    client = client_for(owner)
    assert client.delete(f"/api/v1/series/{data['qps'].pk}").status_code == 405
    assert client.post("/api/v1/series", {"metric": "x"}).status_code == 405


def test_it_filters_by_dataset_and_metric(client_for, viewer, data):
    client = client_for(viewer)
    assert ids(client.get(f"/api/v1/series?dataset={data['db'].pk}")) == {data["qps"].pk}
    assert ids(client.get("/api/v1/series?metric=cpu")) == {data["cpu_a"].pk, data["cpu_b"].pk}


def test_it_filters_by_labels_with_containment(client_for, viewer, data):
    client = client_for(viewer)
    assert ids(client.get("/api/v1/series?label=host:a")) == {data["cpu_a"].pk, data["mem_a"].pk}
    assert ids(client.get("/api/v1/series?label=host:a&label=region:eu&metric=mem")) == {data["mem_a"].pk}
    assert ids(client.get("/api/v1/series?label=host:a&label=region:us")) == set()
    assert ids(client.get("/api/v1/series?label=region=us")) == {data["cpu_b"].pk}


def test_it_rejects_bad_filters(client_for, viewer, data):
    client = client_for(viewer)
    for bad in ("host", ":a"):
        response = client.get(f"/api/v1/series?label={bad}")
        assert response.status_code == 400 and "key:value" in response.json()["detail"]
    response = client.get("/api/v1/series?dataset=web")
    assert response.status_code == 400 and "dataset" in response.json()["detail"]


def test_selector_scopes_to_the_users_teams(viewer, outsider, data):
    assert set(series_list(user=viewer, labels={"host": "a"})) == {data["cpu_a"], data["mem_a"]}
    assert set(series_list(user=outsider)) == {data["theirs"]}
    assert list(series_list(user=outsider, dataset_id=data["web"].pk)) == []


def test_schema_documents_the_read_endpoints(client_for, viewer):
    response = client_for(viewer).get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    points = paths["/api/v1/series/{id}/points"]["get"]
    assert {p["name"] for p in points["parameters"]} >= {"id", "from", "to", "resample", "agg", "limit"}
    assert {p["name"] for p in paths["/api/v1/series"]["get"]["parameters"]} >= {"dataset", "metric", "label"}
