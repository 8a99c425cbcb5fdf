import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings
from django.urls import URLResolver, get_resolver
from django.utils import timezone
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.test import APIClient
from rest_framework.views import APIView

from common.exceptions import ApplicationError
from ingestion.models import Dataset
from teams.models import ApiToken, TokenScope
from teams.permissions import TokenScopePermission
from teams.services import api_token_create, api_token_revoke
from tests.ingestion.helpers import make_dataset


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
    issued = api_token_create(user=owner, name="script", scope=TokenScope.READ)
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


# --- Revocation reaches every descendant -------------------------------------------------------------


def _bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _session(user) -> APIClient:
    """A signed-in (session) client: request.auth is None, so no token scope applies."""
    client = APIClient()
    client.force_login(user)
    return client


def _root(user, scope=TokenScope.ADMIN, **kwargs) -> ApiToken:
    return api_token_create(user=user, name="root", scope=scope, **kwargs)


@pytest.mark.django_db
def test_it_revokes_children_and_grandchildren_with_their_parent(owner, team):
    root = _root(owner)
    child = _bearer(root.key).post("/api/v1/tokens", {"name": "child"}, format="json").json()
    grandchild = _bearer(child["key"]).post("/api/v1/tokens", {"name": "grandchild"}, format="json").json()
    assert _bearer(grandchild["key"]).get("/api/v1/teams").status_code == 200

    assert _session(owner).delete(f"/api/v1/tokens/{root.token.pk}").status_code == 204

    for key in (root.key, child["key"], grandchild["key"]):
        assert _bearer(key).get("/api/v1/teams").status_code == 401
    assert not ApiToken.objects.filter(revoked_at__isnull=True, name__in=["root", "child", "grandchild"]).exists()
    assert child["parent"] == root.token.pk and grandchild["parent"] == child["id"]


@pytest.mark.django_db
def test_it_leaves_siblings_and_the_parent_alone_when_revoking_a_child(owner, team):
    root = _root(owner)
    child = api_token_create(user=owner, name="child", scope=TokenScope.WRITE, parent=root.token)
    sibling = api_token_create(user=owner, name="sibling", scope=TokenScope.WRITE, parent=root.token)
    api_token_revoke(token=child.token)
    assert _bearer(child.key).get("/api/v1/teams").status_code == 401
    assert _bearer(sibling.key).get("/api/v1/teams").status_code == 200
    assert _bearer(root.key).get("/api/v1/teams").status_code == 200


@pytest.mark.django_db
def test_it_keeps_revocation_final(owner, team):
    root = _root(owner)
    api_token_revoke(token=root.token)
    first = ApiToken.objects.get(pk=root.token.pk).revoked_at
    assert _session(owner).delete(f"/api/v1/tokens/{root.token.pk}").status_code == 204
    assert ApiToken.objects.get(pk=root.token.pk).revoked_at == first


@pytest.mark.django_db
def test_it_refuses_to_create_a_child_of_a_revoked_or_expired_token(owner):
    root = _root(owner)
    api_token_revoke(token=root.token)
    with pytest.raises(ApplicationError) as exc:
        api_token_create(user=owner, name="late", scope=TokenScope.READ, parent=root.token)
    assert exc.value.extra == {"field": "parent"}
    old = _root(owner, expires_at=timezone.now() + timedelta(days=1))
    with time_machine.travel(timezone.now() + timedelta(days=2)), pytest.raises(ApplicationError):
        api_token_create(user=owner, name="late", scope=TokenScope.READ, parent=old.token)


def _hold_creation_open(*, user, parent: ApiToken, created: list, locked: threading.Event) -> None:
    """Create a child of `parent` and keep the transaction (and the parent's row lock) open a moment."""
    try:
        with transaction.atomic():
            created.append(api_token_create(user=user, name="racing", scope=TokenScope.READ, parent=parent))
            locked.set()
            time.sleep(0.5)
    finally:
        locked.set()
        connection.close()


@pytest.mark.parametrize("depth", [1, 2], ids=["child", "grandchild"])
@pytest.mark.django_db(transaction=True)
def test_it_revokes_a_descendant_committed_while_the_revocation_waited(owner, depth):
    root = _root(owner)
    parent = root.token
    if depth == 2:  # the revocation then waits on the child's row, inside its descendants statement
        parent = api_token_create(user=owner, name="child", scope=TokenScope.WRITE, parent=root.token).token
    created, locked = [], threading.Event()
    racing = {"user": owner, "parent": parent, "created": created, "locked": locked}
    racer = threading.Thread(target=_hold_creation_open, kwargs=racing)
    racer.start()
    assert locked.wait(10)
    api_token_revoke(token=root.token)  # blocks until the racing creation commits
    racer.join(10)
    assert created, "the racing creation failed"
    assert ApiToken.objects.get(pk=created[0].token.pk).revoked_at is not None
    assert not ApiToken.objects.filter(revoked_at__isnull=True).exists()


# --- A token never creates a wider or longer-lived token ------------------------------------------


@pytest.mark.django_db
def test_it_refuses_a_later_expiry_than_the_creating_tokens(owner, team):
    root = _root(owner, expires_at=timezone.now() + timedelta(days=10))
    later = (timezone.now() + timedelta(days=20)).isoformat()
    response = _bearer(root.key).post("/api/v1/tokens", {"name": "x", "expires_at": later}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "expires_at"
    assert not ApiToken.objects.filter(name="x").exists()


@pytest.mark.django_db
def test_it_refuses_a_wider_scope_than_the_creating_tokens(owner):
    # Over the API only admin tokens may create tokens, and nothing is wider than admin; the service
    # still refuses it for any parent (ApplicationError is the API's 400).
    for parent_scope, wider in [(TokenScope.READ, TokenScope.WRITE), (TokenScope.WRITE, TokenScope.ADMIN)]:
        parent = _root(owner, scope=parent_scope).token
        with pytest.raises(ApplicationError) as exc:
            api_token_create(user=owner, name="wider", scope=wider, parent=parent)
        assert exc.value.status == 400 and exc.value.extra == {"field": "scope"}
    assert not ApiToken.objects.filter(name="wider").exists()


@pytest.mark.django_db
def test_it_lets_an_admin_token_create_narrower_tokens(owner, team):
    root = _root(owner)
    response = _bearer(root.key).post("/api/v1/tokens", {"name": "ro", "scope": "read"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["scope"] == "read" and response.json()["parent"] == root.token.pk


@pytest.mark.django_db
def test_it_defaults_scope_and_expiry_to_the_creating_tokens(owner, team):
    root = _root(owner, expires_at=timezone.now() + timedelta(days=5))
    created = _bearer(root.key).post("/api/v1/tokens", {"name": "x"}, format="json").json()
    assert created["scope"] == "admin"
    assert datetime.fromisoformat(created["expires_at"]) == root.token.expires_at


@pytest.mark.django_db
@override_settings(API_TOKEN_DEFAULT_TTL_DAYS=30)
def test_it_defaults_a_signed_in_users_token_to_write_and_the_default_lifetime(owner, team):
    with time_machine.travel("2025-01-01T00:00:00Z", tick=False):
        created = _session(owner).post("/api/v1/tokens", {"name": "x"}, format="json").json()
    assert created["scope"] == "write" and created["parent"] is None
    assert datetime.fromisoformat(created["expires_at"]) == datetime(2025, 1, 31, tzinfo=UTC)


# --- Expiry -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_an_expired_token(owner, team):
    issued = _root(owner, expires_at=timezone.now() + timedelta(days=1))
    client = _bearer(issued.key)
    assert client.get("/api/v1/teams").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(days=1, seconds=1)):
        response = client.get("/api/v1/teams")
    assert response.status_code == 401
    assert response.json()["detail"] == "Token expired."


@pytest.mark.django_db
@override_settings(API_TOKEN_MAX_TTL_DAYS=100)
def test_it_refuses_an_expiry_beyond_the_maximum(owner, team):
    client = _session(owner)
    too_late = (timezone.now() + timedelta(days=101)).isoformat()
    response = client.post("/api/v1/tokens", {"name": "x", "expires_at": too_late}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "expires_at" and "100 days" in response.json()["detail"]
    in_time = (timezone.now() + timedelta(days=99)).isoformat()
    assert client.post("/api/v1/tokens", {"name": "y", "expires_at": in_time}, format="json").status_code == 201


@pytest.mark.django_db
def test_it_refuses_an_expiry_in_the_past(owner, team):
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = _session(owner).post("/api/v1/tokens", {"name": "x", "expires_at": past}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "expires_at"


# --- Scopes -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_lets_a_read_token_only_read(owner, team):
    dataset = make_dataset(team)
    client = _bearer(_root(owner, scope=TokenScope.READ).key)
    assert client.get("/api/v1/datasets").status_code == 200
    assert client.get(f"/api/v1/datasets/{dataset.pk}").status_code == 200
    assert client.get("/api/v1/tokens").status_code == 200
    writes = [
        ("post", "/api/v1/datasets", {"team": team.pk, "name": "new"}),
        ("patch", f"/api/v1/datasets/{dataset.pk}", {"name": "renamed"}),
        ("delete", f"/api/v1/datasets/{dataset.pk}", None),
        ("post", f"/api/v1/datasets/{dataset.pk}/points", [{"ts": "2024-01-01", "cpu": 1}]),
    ]
    for method, url, body in writes:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 403, url
        assert "'write' scope" in response.json()["detail"], url
    dataset.refresh_from_db()
    assert dataset.name == "metrics" and list(Dataset.objects.values_list("name", flat=True)) == ["metrics"]


@pytest.mark.django_db
def test_it_lets_a_write_token_change_data_but_not_tokens(owner, team):
    client = _bearer(_root(owner, scope=TokenScope.WRITE).key)
    other = _root(owner, scope=TokenScope.READ).token
    assert client.post("/api/v1/datasets", {"team": team.pk, "name": "new"}, format="json").status_code == 201
    assert client.get("/api/v1/tokens").status_code == 200
    response = client.post("/api/v1/tokens", {"name": "x", "scope": "read"}, format="json")
    assert response.status_code == 403 and "'admin' scope" in response.json()["detail"]
    assert client.delete(f"/api/v1/tokens/{other.pk}").status_code == 403
    assert ApiToken.objects.get(pk=other.pk).revoked_at is None
    assert not ApiToken.objects.filter(name="x").exists()


@pytest.mark.django_db
def test_it_does_not_limit_signed_in_users_by_scope(owner, team):
    client = _session(owner)
    assert client.post("/api/v1/datasets", {"team": team.pk, "name": "new"}, format="json").status_code == 201
    assert client.post("/api/v1/tokens", {"name": "x", "scope": "admin"}, format="json").status_code == 201


# Public by design: the schema and its docs page (SPECTACULAR_SETTINGS serves them to anyone).
PUBLIC_API_VIEWS = {SpectacularAPIView, SpectacularSwaggerView}


def _routes(resolver, prefix=""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.callback


def test_it_checks_token_scope_on_every_api_view():
    checked = 0
    for route, callback in _routes(get_resolver()):
        if not route.startswith("api/"):
            continue
        view_class = getattr(callback, "cls", None)
        assert view_class is not None and issubclass(view_class, APIView), f"{route} is not a DRF view"
        if view_class in PUBLIC_API_VIEWS:
            continue
        # @action(permission_classes=...) reaches the view through initkwargs.
        classes = getattr(callback, "initkwargs", {}).get("permission_classes", view_class.permission_classes)
        assert TokenScopePermission in classes, f"{route} ({view_class.__name__}) lacks TokenScopePermission"
        checked += 1
    assert checked > 10  # the walk did find the API
    assert "teams.permissions.TokenScopePermission" in settings.REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"]
