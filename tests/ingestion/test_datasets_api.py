"""Dataset CRUD: scoped to the caller's teams; writes need analyst or admin."""

import pytest

from ingestion.models import Dataset
from tests.ingestion.helpers import make_dataset

pytestmark = pytest.mark.django_db


def test_it_creates_a_dataset_in_my_team(owner_client, team):
    response = owner_client.post(
        "/api/v1/datasets", {"team": team.pk, "name": "web", "kind": "timeseries", "duplicate_policy": "overwrite"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    assert Dataset.objects.get(pk=response.json()["id"]).duplicate_policy == "overwrite"


def test_it_refuses_a_duplicate_name(owner_client, team):
    make_dataset(team, name="web")
    response = owner_client.post("/api/v1/datasets", {"team": team.pk, "name": "web"}, format="json")
    assert response.status_code == 400 and "unique" in str(response.json())


def test_it_refuses_to_create_in_a_team_i_only_view(client_for, viewer, team):
    response = client_for(viewer).post("/api/v1/datasets", {"team": team.pk, "name": "x"}, format="json")
    assert response.status_code == 400 and "team" in response.json()


def test_it_refuses_to_create_in_another_team(outsider_client, team):
    response = outsider_client.post("/api/v1/datasets", {"team": team.pk, "name": "x"}, format="json")
    assert response.status_code == 400 and "team" in response.json()
    assert not Dataset.objects.filter(name="x").exists()


def test_it_lets_a_viewer_read_but_not_change(client_for, viewer, team):
    dataset = make_dataset(team)
    client = client_for(viewer)
    assert client.get(f"/api/v1/datasets/{dataset.pk}").status_code == 200
    assert client.patch(f"/api/v1/datasets/{dataset.pk}", {"name": "y"}, format="json").status_code == 403
    assert client.delete(f"/api/v1/datasets/{dataset.pk}").status_code == 403


def test_it_keeps_team_and_kind_fixed_after_creation(owner_client, team, other_team):
    dataset = make_dataset(team)
    owner_client.patch(f"/api/v1/datasets/{dataset.pk}", {"team": other_team.pk, "kind": "table"}, format="json")
    dataset.refresh_from_db()
    assert (dataset.team_id, dataset.kind) == (team.pk, "timeseries")


def test_it_deletes_a_dataset_with_its_points(owner_client, team):
    dataset = make_dataset(team)
    owner_client.post(f"/api/v1/datasets/{dataset.pk}/points", b"ts,m\n2024-01-01,1\n", content_type="text/csv")
    assert owner_client.delete(f"/api/v1/datasets/{dataset.pk}").status_code == 204
    from ingestion.models import Point

    assert not Point.objects.exists()
