"""Sending a notification once: the claim, the lease, retries, permanent failures (services, no worker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import AttemptStatus, Channel, Notification, NotificationStatus
from alerts.services.alerting import alerts_open
from alerts.services.delivery import notification_deliver, notifications_redispatch_due
from tests.alerts.helpers import Receiver, incident, rule, watched_detector, webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    statuses = {"/flaky": [503, 429, 200], "/gone": [410]}
    server = Receiver(
        respond=lambda path, n: (statuses.get(path) or [200])[min(n, len(statuses.get(path) or [200]) - 1)]
    )
    yield server.start()
    server.stop()


def notification_to(team, url: str) -> Notification:
    detector = watched_detector(team)
    hook = webhook(team, url)
    rule(team, [hook], detectors=[detector])
    [notification_id] = alerts_open(anomaly_ids=[incident(detector).pk])
    return Notification.objects.get(pk=notification_id)


def test_it_sends_once_however_often_it_runs(team, receiver):
    notification = notification_to(team, receiver.url + "/ok")
    assert notification_deliver(notification_id=notification.pk).status == "sent"
    assert notification_deliver(notification_id=notification.pk).status == "done"
    assert len(receiver.requests) == 1 and receiver.requests[0].signature_ok()
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT and notification.sent_at and notification.attempts == 1
    [attempt] = notification.delivery_attempts.all()
    assert attempt.status == AttemptStatus.SENT and attempt.http_status == 200 and attempt.latency_ms is not None


def test_it_waits_for_a_live_senders_lease(team, receiver, settings):
    notification = notification_to(team, receiver.url + "/ok")
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.SENDING, claimed_until=timezone.now() + timedelta(seconds=20), attempts=1
    )
    outcome = notification_deliver(notification_id=notification.pk)
    assert outcome.status == "wait" and 19 < outcome.retry_in <= 21
    assert receiver.requests == []


def test_it_takes_over_a_dead_senders_claim_and_marks_its_attempt_abandoned(team, receiver):
    notification = notification_to(team, receiver.url + "/ok")
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.SENDING, claimed_until=timezone.now() - timedelta(seconds=1), attempts=1
    )
    notification.delivery_attempts.create(number=1, started_at=timezone.now(), status=AttemptStatus.SENDING)
    assert notification_deliver(notification_id=notification.pk).status == "sent"
    statuses = list(notification.delivery_attempts.order_by("number").values_list("status", flat=True))
    assert statuses == [AttemptStatus.ABANDONED, AttemptStatus.SENT]


def test_it_does_not_send_before_it_is_due(team, receiver):
    notification = notification_to(team, receiver.url + "/ok")
    Notification.objects.filter(pk=notification.pk).update(not_before=timezone.now() + timedelta(minutes=5))
    outcome = notification_deliver(notification_id=notification.pk)
    assert outcome.status == "wait" and 290 < outcome.retry_in < 301 and receiver.requests == []


def test_it_retries_transient_failures_with_backoff(team, receiver, settings):
    settings.ALERTS_RETRY_BASE_SECONDS = 2
    notification = notification_to(team, receiver.url + "/flaky")
    first = notification_deliver(notification_id=notification.pk)
    assert (first.status, first.retry_in) == ("retry", 2)
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING and notification.not_before > timezone.now()
    Notification.objects.filter(pk=notification.pk).update(not_before=timezone.now())
    assert notification_deliver(notification_id=notification.pk).retry_in == 4  # 429: also transient
    Notification.objects.filter(pk=notification.pk).update(not_before=timezone.now())
    assert notification_deliver(notification_id=notification.pk).status == "sent"
    attempts = list(notification.delivery_attempts.order_by("number").values_list("status", "http_status"))
    assert attempts == [("retry", 503), ("retry", 429), ("sent", 200)]


def test_it_gives_up_after_the_last_attempt(team, receiver, settings):
    settings.ALERTS_MAX_ATTEMPTS = 1
    notification = notification_to(team, receiver.url + "/flaky")
    assert notification_deliver(notification_id=notification.pk).status == "failed"
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.FAILED and "gave up after 1 attempts" in notification.error
    assert Channel.objects.get().enabled  # a transient failure never disables the channel


def test_a_permanent_failure_disables_the_channel_with_its_reason(team, receiver):
    notification = notification_to(team, receiver.url + "/gone")
    assert notification_deliver(notification_id=notification.pk).status == "failed"
    channel = Channel.objects.get()
    assert not channel.enabled and "HTTP 410" in channel.disabled_reason and channel.disabled_at
    other = Notification.objects.create(alert=notification.alert, channel=channel, event="resolved",
                                        not_before=timezone.now())  # fmt: skip
    assert notification_deliver(notification_id=other.pk).status == "failed"
    other.refresh_from_db()
    assert other.error.startswith("channel disabled:") and len(receiver.requests) == 1
    test = Notification.objects.create(channel=channel, event="test", not_before=timezone.now())
    assert notification_deliver(notification_id=test.pk).status == "failed"  # a test still goes out: 410 again
    assert len(receiver.requests) == 2


def test_the_sweeper_re_enqueues_only_lost_due_notifications(team, receiver, settings):
    settings.ALERTS_REDISPATCH_SECONDS = 10
    lost = notification_to(team, receiver.url + "/ok")
    old = timezone.now() - timedelta(seconds=30)
    Notification.objects.filter(pk=lost.pk).update(enqueued_at=old)
    fresh = Notification.objects.create(channel=lost.channel, event="test", not_before=timezone.now(),
                                        enqueued_at=timezone.now())  # fmt: skip
    held = Notification.objects.create(channel=lost.channel, event="test", not_before=old, enqueued_at=old,
                                       status=NotificationStatus.SENDING,
                                       claimed_until=timezone.now() + timedelta(seconds=20))  # fmt: skip
    dead = Notification.objects.create(channel=lost.channel, event="test", not_before=old, enqueued_at=old,
                                       status=NotificationStatus.SENDING, claimed_until=old)  # fmt: skip
    assert notifications_redispatch_due() == sorted([lost.pk, dead.pk])
    assert notifications_redispatch_due() == []  # marked enqueued now
    assert fresh.pk and held.pk
