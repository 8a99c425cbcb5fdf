"""Shared fixtures: healthchecks-style personas and API clients.

- owner: admin of team "acme", owns the data
- teammate: analyst in "acme" (may write)
- viewer: viewer in "acme" (read only)
- outsider: admin of another team, "globex"; must never see acme's data
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from teams.models import Role, TokenScope
from teams.services import api_token_create, membership_set, team_create

pytest_plugins = ["tests.celery_worker"]


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("alice", "alice@example.com", "pw-alice")


@pytest.fixture
def teammate(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "pw-bob")


@pytest.fixture
def viewer(db):
    return get_user_model().objects.create_user("vera", "vera@example.com", "pw-vera")


@pytest.fixture
def outsider(db):
    return get_user_model().objects.create_user("charlie", "charlie@example.com", "pw-charlie")


@pytest.fixture
def team(owner, teammate, viewer):
    team = team_create(name="Acme", owner=owner)
    membership_set(team=team, user=teammate, role=Role.ANALYST)
    membership_set(team=team, user=viewer, role=Role.VIEWER)
    return team


@pytest.fixture
def other_team(outsider):
    return team_create(name="Globex", owner=outsider)


def _client_for(user) -> APIClient:
    """A client with a fresh admin-scope token (full scope) of that user."""
    client = APIClient()
    issued = api_token_create(user=user, name="tests", scope=TokenScope.ADMIN)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.key}")
    return client


@pytest.fixture
def client_for():
    """client_for(user) -> an APIClient authenticated with a fresh API token of that user."""
    return _client_for


@pytest.fixture
def owner_client(owner, team):
    return _client_for(owner)


@pytest.fixture
def outsider_client(outsider, other_team):
    return _client_for(outsider)
