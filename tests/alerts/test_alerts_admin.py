"""Channels and rules from the admin: write-only secrets, field errors on the form, the test action, and
choices limited to the user's teams."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from alerts.models import AlertRule, Channel, Notification
from tests.alerts.helpers import SECRET, watched_detector, webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(teammate, team):
    teammate.is_staff = True
    teammate.save(update_fields=["is_staff"])
    teammate.user_permissions.set(Permission.objects.filter(content_type__app_label="alerts"))
    client = Client()
    client.force_login(teammate)
    return client


def channel_form(team, **fields) -> dict:
    return {"team": team.pk, "name": "hook", "kind": "webhook", "config": '{"url": "https://example.com/h"}',
            "secrets_input": f'{{"secret": "{SECRET}"}}', "enabled": "on", **fields}  # fmt: skip


def test_it_creates_a_channel_and_never_shows_its_secret_again(staff_client, team):
    response = staff_client.post("/admin/alerts/channel/add/", channel_form(team))
    assert response.status_code == 302, response.context["adminform"].form.errors
    channel = Channel.objects.get()
    assert channel.secrets == {"secret": SECRET}
    page = staff_client.get(f"/admin/alerts/channel/{channel.pk}/change/").content.decode()
    assert SECRET not in page and "Secrets set" in page


def test_it_keeps_the_secret_when_the_form_leaves_it_empty(staff_client, team):
    channel = webhook(team, "https://example.com/a")
    response = staff_client.post(f"/admin/alerts/channel/{channel.pk}/change/",
                                 {"name": "hook", "config": '{"url": "https://example.com/b"}', "secrets_input": "",
                                  "enabled": "on"})  # fmt: skip
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.secrets == {"secret": SECRET} and channel.config["url"] == "https://example.com/b"


def test_it_puts_config_errors_on_the_form(staff_client, team):
    response = staff_client.post("/admin/alerts/channel/add/", channel_form(team, secrets_input='{"secret": "x"}',
                                                                            config='{"url": "nope"}'))  # fmt: skip
    errors = response.context["adminform"].form.errors
    assert "secrets_input" in errors and "config" in errors and not Channel.objects.exists()


def test_it_queues_a_test_message_from_the_action(staff_client, team, monkeypatch):
    channel = webhook(team, "https://example.com/a")
    monkeypatch.setattr("alerts.tasks.send_notifications.apply_async", lambda *a, **k: None)
    response = staff_client.post("/admin/alerts/channel/", {"action": "send_test", "_selected_action": [channel.pk]},
                                 follow=True)  # fmt: skip
    assert response.status_code == 200
    assert Notification.objects.get().event == "test"


def test_a_rule_offers_and_accepts_only_the_users_teams_objects(staff_client, team, other_team):
    mine, theirs = watched_detector(team), watched_detector(other_team, name="globex watch")
    channel = webhook(team, "https://example.com/a")
    form = staff_client.get("/admin/alerts/alertrule/add/").context["adminform"].form
    assert list(form.fields["detectors"].queryset) == [mine]
    body = {"team": team.pk, "name": "r", "enabled": "on", "channels": [channel.pk], "min_severity": "high",
            "cooldown": "0", "grouping_window": "0", "timezone": "UTC", "notify_on_resolve": "on"}  # fmt: skip
    response = staff_client.post("/admin/alerts/alertrule/add/", {**body, "detectors": [theirs.pk]})
    assert "detectors" in response.context["adminform"].form.errors and not AlertRule.objects.exists()
    response = staff_client.post("/admin/alerts/alertrule/add/", {**body, "timezone": "Nowhere/Land"})
    assert "timezone" in response.context["adminform"].form.errors
    response = staff_client.post("/admin/alerts/alertrule/add/", {**body, "detectors": [mine.pk]})
    assert response.status_code == 302
    assert list(AlertRule.objects.get().detectors.all()) == [mine]
