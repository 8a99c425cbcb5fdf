"""Every object endpoint, seen by the owner's teammate, a viewer and an outsider.

The outsider must get 404 on every object of another team and find nothing of it in any list.
"""

import pytest

from ingestion.models import IngestBatch, Series
from tests.ingestion.helpers import make_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(owner_client, team):
    dataset = make_dataset(team)
    table = make_dataset(team, name="rows", kind="table")
    owner_client.post(f"/api/v1/datasets/{dataset.pk}/points", b"ts,cpu\n2024-01-01,1\n", content_type="text/csv")
    series = Series.objects.get(dataset=dataset)
    batch = IngestBatch.objects.get(dataset=dataset)
    return {"dataset": dataset, "table": table, "series": series, "batch": batch, "team": team}


def object_urls(acme) -> list[str]:
    d, s, b = acme["dataset"].pk, acme["series"].pk, acme["batch"].pk
    return [
        f"/api/v1/datasets/{d}",
        f"/api/v1/datasets/{d}/summary",
        f"/api/v1/series/{s}",
        f"/api/v1/series/{s}/points",
        f"/api/v1/batches/{b}",
        f"/api/v1/teams/{acme['team'].pk}",
    ]


def acme_ids(acme) -> dict[str, int]:
    return {
        "/api/v1/datasets": acme["dataset"].pk,
        "/api/v1/series": acme["series"].pk,
        "/api/v1/batches": acme["batch"].pk,
        "/api/v1/teams": acme["team"].pk,
    }


def test_it_answers_404_to_an_outsider_for_every_object(outsider_client, acme):
    for url in object_urls(acme):
        assert outsider_client.get(url).status_code == 404, url


def test_it_shows_an_outsider_nothing_in_lists(outsider_client, acme):
    for url, acme_id in acme_ids(acme).items():
        response = outsider_client.get(url)
        assert response.status_code == 200, url
        assert acme_id not in [row["id"] for row in response.json()["results"]], url
    assert outsider_client.get("/api/v1/datasets").json()["results"] == []


def test_it_answers_404_to_an_outsider_for_every_write(outsider_client, acme):
    d, t = acme["dataset"].pk, acme["table"].pk
    writes = [
        ("patch", f"/api/v1/datasets/{d}", {"name": "stolen"}),
        ("delete", f"/api/v1/datasets/{d}", None),
        ("post", f"/api/v1/datasets/{d}/points", [{"ts": "2024-01-02", "cpu": 2}]),
        ("post", f"/api/v1/datasets/{t}/records", [{"x": 1}]),
    ]
    for method, url, body in writes:
        assert getattr(outsider_client, method)(url, body, format="json").status_code == 404, url
    acme["dataset"].refresh_from_db()
    assert acme["dataset"].name == "metrics"


def test_it_lets_teammates_and_viewers_read_everything(client_for, teammate, viewer, acme):
    for user in (teammate, viewer):
        client = client_for(user)
        for url in object_urls(acme):
            assert client.get(url).status_code == 200, (user, url)
        for url, acme_id in acme_ids(acme).items():
            assert acme_id in [row["id"] for row in client.get(url).json()["results"]], (user, url)


def test_it_refuses_every_write_from_a_viewer(client_for, viewer, acme):
    client = client_for(viewer)
    d, t = acme["dataset"].pk, acme["table"].pk
    assert client.patch(f"/api/v1/datasets/{d}", {"name": "x"}, format="json").status_code == 403
    assert client.delete(f"/api/v1/datasets/{d}").status_code == 403
    assert (
        client.post(f"/api/v1/datasets/{d}/points", [{"ts": "2024-01-02", "cpu": 2}], format="json").status_code == 403
    )
    assert client.post(f"/api/v1/datasets/{t}/records", [{"x": 1}], format="json").status_code == 403


def test_it_lets_an_analyst_change_a_dataset(client_for, teammate, acme):
    response = client_for(teammate).patch(f"/api/v1/datasets/{acme['dataset'].pk}", {"name": "renamed"}, format="json")
    assert response.status_code == 200
