"""The API token admin: tokens only for oneself, nothing but the name changes after creation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client, override_settings
from django.utils import timezone

from teams.models import ApiToken, TokenScope
from teams.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/teams/apitoken/add/"
LIST_URL = "/admin/teams/apitoken/"


def change_url(token: ApiToken) -> str:
    return f"/admin/teams/apitoken/{token.pk}/change/"


@pytest.fixture
def staff(db):
    """A staff user (not a superuser) with every ApiToken permission."""
    user = get_user_model().objects.create_user("stan", "stan@example.com", "pw-stan", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="teams", codename__endswith="apitoken"))
    return user


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


def _split(moment) -> dict:
    return {"expires_at_0": moment.strftime("%Y-%m-%d"), "expires_at_1": moment.strftime("%H:%M:%S")}


def test_it_creates_tokens_only_for_oneself(staff_client, staff, outsider):
    form = {"name": "mine", "scope": "read", "user": outsider.pk, **_split(timezone.now() + timedelta(days=7))}
    response = staff_client.post(ADD_URL, form, follow=True)
    assert response.status_code == 200
    token = ApiToken.objects.get(name="mine")
    assert token.user == staff and token.scope == TokenScope.READ and token.parent is None
    assert not ApiToken.objects.filter(user=outsider).exists()
    shown = [str(m) for m in response.context["messages"]]
    assert any("Copy it now" in m and m.split()[-1].startswith(token.prefix) for m in shown)


def test_it_creates_a_token_for_a_superuser_themself_too(client, outsider):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
    client.force_login(root)
    client.post(ADD_URL, {"name": "su", "scope": "admin", "user": outsider.pk, "expires_at_0": "", "expires_at_1": ""})
    assert ApiToken.objects.get(name="su").user == root


def test_it_offers_only_name_scope_and_expiry_on_the_add_form(staff_client):
    form = staff_client.get(ADD_URL).context["adminform"].form
    assert list(form.fields) == ["name", "scope", "expires_at"]


@override_settings(API_TOKEN_MAX_TTL_DAYS=30)
def test_it_refuses_an_expiry_beyond_the_maximum(staff_client):
    response = staff_client.post(
        ADD_URL, {"name": "long", "scope": "write", **_split(timezone.now() + timedelta(days=31))}
    )
    assert response.status_code == 200
    assert "expires_at" in response.context["adminform"].form.errors
    assert not ApiToken.objects.filter(name="long").exists()


def test_it_defaults_the_expiry_when_left_empty(staff_client):
    staff_client.post(ADD_URL, {"name": "default", "scope": "write", "expires_at_0": "", "expires_at_1": ""})
    token = ApiToken.objects.get(name="default")
    assert abs(token.expires_at - (timezone.now() + timedelta(days=90))) < timedelta(minutes=1)


def test_it_cannot_reassign_a_token_or_change_anything_but_its_name(staff_client, staff, outsider):
    token = api_token_create(user=staff, name="mine", scope=TokenScope.READ).token
    later = timezone.now() + timedelta(days=300)
    tampered = {"name": "renamed", "user": outsider.pk, "scope": "admin", **_split(later), "parent": token.pk}
    assert staff_client.post(change_url(token), tampered).status_code == 302
    token.refresh_from_db()
    assert token.name == "renamed" and token.user == staff
    assert (token.scope, token.parent) == (TokenScope.READ, None)
    assert token.expires_at < later - timedelta(days=100)


def test_it_cannot_clear_revoked_at(staff_client, staff):
    token = api_token_create(user=staff, name="gone", scope=TokenScope.WRITE).token
    revoked_at = api_token_revoke(token=token).revoked_at
    form = {"name": "gone", "user": staff.pk, "revoked_at_0": "", "revoked_at_1": ""}
    assert staff_client.post(change_url(token), form).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at == revoked_at
    form = staff_client.get(change_url(token)).context["adminform"].form
    assert list(form.fields) == ["name"]


def test_it_shows_a_staff_user_only_their_own_tokens(staff_client, staff, outsider):
    api_token_create(user=staff, name="stan-token", scope=TokenScope.WRITE)
    theirs = api_token_create(user=outsider, name="charlie-token", scope=TokenScope.WRITE).token
    page = staff_client.get(LIST_URL).content.decode()
    assert "stan-token" in page and "charlie-token" not in page
    assert staff_client.get(change_url(theirs)).status_code == 302  # "doesn't exist", back to the index
    staff_client.post(change_url(theirs), {"name": "hijacked"})
    staff_client.post(LIST_URL, {"action": "revoke", "_selected_action": [theirs.pk]})
    theirs.refresh_from_db()
    assert theirs.name == "charlie-token" and theirs.revoked_at is None


def test_it_shows_a_superuser_every_token(client, outsider):
    api_token_create(user=outsider, name="charlie-token", scope=TokenScope.WRITE)
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-root"))
    assert "charlie-token" in client.get(LIST_URL).content.decode()


def test_it_revokes_with_children_from_the_action(staff_client, staff):
    root = api_token_create(user=staff, name="root", scope=TokenScope.ADMIN).token
    child = api_token_create(user=staff, name="child", scope=TokenScope.WRITE, parent=root).token
    grandchild = api_token_create(user=staff, name="grandchild", scope=TokenScope.READ, parent=child).token
    response = staff_client.post(LIST_URL, {"action": "revoke", "_selected_action": [root.pk]})
    assert response.status_code == 302
    for token in (root, child, grandchild):
        token.refresh_from_db()
        assert token.revoked_at is not None, token.name
