import pytest
from rest_framework.test import APIClient

from teams.models import ApiToken
from teams.services import api_token_create


@pytest.mark.django_db
def test_it_shows_the_key_once_and_stores_only_its_hash(owner_client, owner):
    response = owner_client.post("/api/v1/tokens", {"name": "ci"}, format="json")
    assert response.status_code == 201
    key = response.json()["key"]
    token = ApiToken.objects.get(pk=response.json()["id"])
    assert key not in token.key_hash and len(token.key_hash) == 64
    listing = owner_client.get("/api/v1/tokens").json()["results"]
    assert all("key" not in row for row in listing)


@pytest.mark.django_db
def test_it_authenticates_with_a_token_and_records_last_use(owner, team):
    client = APIClient()
    issued = api_token_create(user=owner, name="script")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    assert client.get("/api/v1/teams").status_code == 200
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None


@pytest.mark.django_db
def test_it_refuses_a_revoked_token(owner_client, owner):
    created = owner_client.post("/api/v1/tokens", {"name": "temp"}, format="json").json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created['key']}")
    assert client.get("/api/v1/teams").status_code == 200
    assert owner_client.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
    assert client.get("/api/v1/teams").status_code == 401


@pytest.mark.django_db
def test_it_refuses_anonymous_requests():
    assert APIClient().get("/api/v1/teams").status_code in (401, 403)


@pytest.mark.django_db
def test_it_lists_only_my_teams_with_my_role(owner_client, outsider_client):
    teams = owner_client.get("/api/v1/teams").json()["results"]
    assert [(t["slug"], t["role"]) for t in teams] == [("acme", "admin")]
    assert [t["slug"] for t in outsider_client.get("/api/v1/teams").json()["results"]] == ["globex"]


@pytest.mark.django_db
def test_it_hides_other_users_tokens(owner_client, outsider_client):
    created = owner_client.post("/api/v1/tokens", {"name": "mine"}, format="json").json()
    assert outsider_client.delete(f"/api/v1/tokens/{created['id']}").status_code == 404
