"""Rate limits: per API token, and per IP after failed API authentications and admin logins."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_it_throttles_each_token_on_its_own(owner_client, outsider_client, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"token": "3/min"})
    assert [owner_client.get("/api/v1/datasets").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert outsider_client.get("/api/v1/datasets").status_code == 200


@override_settings(AUTH_FAILURE_LIMIT=3)
def test_it_blocks_an_ip_after_failed_token_authentications(owner_client):
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer nope")
    assert [bad.get("/api/v1/datasets").status_code for _ in range(4)] == [401, 401, 401, 429]
    # Even a good token from that address waits until the window ends: the address is guessing keys.
    assert owner_client.get("/api/v1/datasets").status_code == 429


@override_settings(AUTH_FAILURE_LIMIT=2)
def test_it_throttles_failed_admin_logins():
    get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
    client = Client()
    wrong = {"username": "root", "password": "wrong", "next": "/admin/"}
    assert [client.post("/admin/login/", wrong).status_code for _ in range(3)] == [200, 200, 429]
    right = {"username": "root", "password": "pw-root", "next": "/admin/"}
    assert client.post("/admin/login/", right).status_code == 429
