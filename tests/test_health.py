"""GET /health checks the database and the broker for real, and answers 503 when one is down."""

from __future__ import annotations

import socket

import pytest

from config.celery import app as celery_app


@pytest.fixture
def broker_down():
    """Point the Celery app at a port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    previous = celery_app.conf.broker_url, celery_app.conf.broker_write_url
    celery_app.conf.broker_url = celery_app.conf.broker_write_url = f"redis://127.0.0.1:{port}/0"
    yield
    celery_app.conf.broker_url, celery_app.conf.broker_write_url = previous


@pytest.mark.django_db
def test_it_reports_both_checks_ok_with_their_latency(client):
    response = client.get("/health")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker"}
    for check in body["checks"].values():
        assert check["ok"] is True
        assert check["latency_ms"] >= 0


@pytest.mark.django_db
def test_it_answers_503_when_the_broker_is_down(client, broker_down):
    response = client.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"] == {"ok": False, "error": "unavailable"}


@pytest.mark.django_db
def test_it_hides_internal_hosts_and_exception_text_from_anyone_but_staff(client, broker_down, django_user_model):
    anonymous = client.get("/health").content.decode()
    user = django_user_model.objects.create_user("plain", password="pw")
    client.force_login(user)
    logged_in = client.get("/health").content.decode()
    user.is_staff = True
    user.save()
    staff = client.get("/health").json()

    for body in (anonymous, logged_in):
        assert "127.0.0.1" not in body and "Error" not in body and "broker_url" not in body
    assert "127.0.0.1" in staff["checks"]["broker"]["error"]
    assert "127.0.0.1" in staff["broker_url"]


def test_it_only_answers_get(client):
    assert client.post("/health").status_code == 405
