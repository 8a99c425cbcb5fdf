"""Channels, rules, alerts and notifications through the API: validation per field, write-only secrets,
team scoping (another team's objects are 404, or a 400 "does not exist" when referenced)."""

from __future__ import annotations

import pytest

from alerts.models import Channel, Notification
from alerts.services.alerting import alerts_open
from tests.alerts.helpers import SECRET, incident, rule, watched_detector, webhook

pytestmark = pytest.mark.django_db


def channel_body(team, **fields) -> dict:
    return {"team": team.pk, "name": "ops hook", "kind": "webhook", "config": {"url": "https://example.com/hook"},
            "secrets": {"secret": SECRET}, **fields}  # fmt: skip


def test_it_creates_a_channel_and_never_shows_its_secret(owner_client, team):
    response = owner_client.post("/api/v1/channels", channel_body(team), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secrets_set"] == ["secret"] and "secrets" not in body and SECRET not in response.content.decode()
    assert Channel.objects.get().secrets == {"secret": SECRET}
    listed = owner_client.get("/api/v1/channels").content.decode()
    assert SECRET not in listed and "ops hook" in listed


def test_it_keeps_secrets_that_an_update_leaves_out(owner_client, team):
    channel = webhook(team, "https://example.com/a")
    response = owner_client.patch(f"/api/v1/channels/{channel.pk}", {"config": {"url": "https://example.com/b"}},
                                  format="json")  # fmt: skip
    assert response.status_code == 200, response.json()
    channel.refresh_from_db()
    assert channel.config == {"url": "https://example.com/b"} and channel.secrets == {"secret": SECRET}


@pytest.mark.parametrize(
    ("fields", "where", "field"),
    [
        ({"config": {"url": "not a url"}}, "config", "url"),
        ({"secrets": {"secret": "short"}}, "secrets", "secret"),
        ({"config": {"url": "https://x.org", "verb": "PUT"}}, "config", "verb"),
        ({"kind": "email", "config": {"to": ["nobody"]}, "secrets": {}}, "config", "to"),
        ({"kind": "email", "config": {}, "secrets": {}}, "config", "to"),
        ({"kind": "apprise", "config": {}, "secrets": {"urls": ["nonsense://x"]}}, "secrets", "urls"),
    ],
)
def test_it_answers_400_naming_the_bad_field(owner_client, team, fields, where, field):
    response = owner_client.post("/api/v1/channels", channel_body(team, **fields), format="json")
    assert response.status_code == 400
    assert field in response.json()[where], response.json()


def test_it_refuses_an_unknown_kind(owner_client, team):
    response = owner_client.post("/api/v1/channels", channel_body(team, kind="pigeon"), format="json")
    assert response.status_code == 400 and "kind" in response.json()


def test_it_queues_a_test_message(owner_client, team, django_capture_on_commit_callbacks, monkeypatch):
    channel = webhook(team, "https://example.com/hook")
    sent = []
    monkeypatch.setattr("alerts.tasks.send_notifications.apply_async", lambda args, **kw: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/api/v1/channels/{channel.pk}/test")
    assert response.status_code == 202
    notification = Notification.objects.get(pk=response.json()["id"])
    assert notification.event == "test" and notification.alert is None and sent == [([notification.pk],)]


def test_a_viewer_cannot_send_a_test_message(client_for, viewer, team):
    channel = webhook(team, "https://example.com/hook")
    assert client_for(viewer).post(f"/api/v1/channels/{channel.pk}/test").status_code == 403


def rule_body(team, detector, channel, **fields) -> dict:
    return {"team": team.pk, "name": "cpu pages", "detectors": [detector.pk], "channels": [channel.pk],
            "min_severity": "high", "cooldown": "00:30:00", "grouping_window": "00:05:00", "quiet_start": "22:00",
            "quiet_end": "07:00", "timezone": "Europe/Paris", **fields}  # fmt: skip


def test_it_creates_a_rule(owner_client, team):
    detector, channel = watched_detector(team), webhook(team, "https://example.com/hook")
    response = owner_client.post("/api/v1/alert-rules", rule_body(team, detector, channel), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["detectors"] == [detector.pk] and body["channels"] == [channel.pk]
    assert body["cooldown"] == "00:30:00" and body["timezone"] == "Europe/Paris"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"cooldown": "-00:05:00"}, "cooldown"),
        ({"min_severity": "apocalyptic"}, "min_severity"),
        ({"quiet_end": None}, "quiet_end"),
        ({"min_deviation": -1}, "min_deviation"),
        ({"channels": []}, "channels"),
    ],
)
def test_it_validates_rules_per_field(owner_client, team, fields, field):
    detector, channel = watched_detector(team), webhook(team, "https://example.com/hook")
    response = owner_client.post("/api/v1/alert-rules", rule_body(team, detector, channel, **fields), format="json")
    assert response.status_code == 400 and field in response.json(), response.json()


def test_a_rule_cannot_reference_another_teams_channel_or_detector(outsider_client, other_team, team):
    theirs_detector, theirs_channel = watched_detector(team), webhook(team, "https://example.com/acme")
    mine_detector = watched_detector(other_team, name="mine")
    mine_channel = webhook(other_team, "https://example.com/mine")
    for detector, channel, field in ((mine_detector, theirs_channel, "channels"),
                                     (theirs_detector, mine_channel, "detectors")):  # fmt: skip
        response = outsider_client.post("/api/v1/alert-rules", rule_body(other_team, detector, channel),
                                        format="json")  # fmt: skip
        assert response.status_code == 400 and field in response.json()
        assert "object does not exist" in str(response.json()[field])  # the same answer as a made-up id


def test_an_outsider_gets_404_for_everything_of_another_team(outsider_client, team):
    detector, channel = watched_detector(team), webhook(team, "https://example.com/hook")
    acme_rule = rule(team, [channel], detectors=[detector])
    [notification_id] = alerts_open(anomaly_ids=[incident(detector).pk])
    alert_id = Notification.objects.get(pk=notification_id).alert_id
    for url in (f"/api/v1/channels/{channel.pk}", f"/api/v1/alert-rules/{acme_rule.pk}", f"/api/v1/alerts/{alert_id}",
                f"/api/v1/notifications/{notification_id}"):  # fmt: skip
        assert outsider_client.get(url).status_code == 404, url
    assert outsider_client.post(f"/api/v1/channels/{channel.pk}/test").status_code == 404
    assert outsider_client.patch(f"/api/v1/alert-rules/{acme_rule.pk}", {"name": "x"}, format="json").status_code == 404
    for url in ("/api/v1/channels", "/api/v1/alert-rules", "/api/v1/alerts", "/api/v1/notifications"):
        assert outsider_client.get(url).json()["results"] == [], url


def test_it_lists_alerts_and_notifications_with_their_attempts(owner_client, team):
    detector, channel = watched_detector(team), webhook(team, "https://example.com/hook")
    rule(team, [channel], detectors=[detector])
    [notification_id] = alerts_open(anomaly_ids=[incident(detector).pk])
    Notification.objects.get(pk=notification_id).delivery_attempts.create(
        number=1, started_at="2024-01-01T00:00:00Z", status="retry", http_status=503, latency_ms=12
    )
    [alert] = owner_client.get("/api/v1/alerts").json()["results"]
    assert alert["count"] == 1 and alert["status"] == "open" and alert["detector"] == detector.pk
    [notification] = owner_client.get("/api/v1/notifications", {"alert": alert["id"]}).json()["results"]
    assert notification["event"] == "opened"
    assert notification["delivery_attempts"][0] | {"started_at": None} == {
        "number": 1, "status": "retry", "started_at": None, "latency_ms": 12, "http_status": 503, "error": "",
        "worker": "",
    }  # fmt: skip


def test_a_disabled_channel_shows_why_and_is_enabled_again_by_hand(owner_client, team):
    channel = webhook(team, "https://example.com/hook")
    Channel.objects.filter(pk=channel.pk).update(enabled=False, disabled_reason="HTTP 404 Not Found")
    assert owner_client.get(f"/api/v1/channels/{channel.pk}").json()["disabled_reason"] == "HTTP 404 Not Found"
    response = owner_client.patch(f"/api/v1/channels/{channel.pk}", {"enabled": True}, format="json")
    assert response.json()["enabled"] is True and response.json()["disabled_reason"] == ""
