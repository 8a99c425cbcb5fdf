"""Sending a notification once: claim it by a conditional UPDATE, send, mark it, log the attempt.

The claim sets status "sending" with a lease (`claimed_until`, by the database's clock, which every worker
shares) and only succeeds on a pending notification that is due, or on one whose lease has run out (its
sender died). A task that runs
again finds the notification sent and does nothing; one that finds a live lease waits for it to end.

The limit: a sender that dies after the receiver took the message but before it is marked sent leaves a
claim that the next sender takes over, and the message goes out again. Every copy carries the same
idempotency key (`notification-<id>`), so a receiver that remembers keys keeps one. No protocol can do
better without the receiver's help.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from alerts.channels.base import DeliveryError
from alerts.channels.registry import get_channel
from alerts.models import AttemptStatus, Channel, DeliveryAttempt, Notification, NotificationStatus
from alerts.services.messages import message_render

logger = logging.getLogger(__name__)
MAX_BACKOFF_S = 600
TABLE = Notification._meta.db_table


@dataclass
class Outcome:
    status: str  # sent, done (nothing to do), failed, retry, wait
    retry_in: float | None = None


def notification_deliver(*, notification_id: int, worker: str = "") -> Outcome:
    """Send the notification unless it was sent, failed for good, is not due, or another sender holds it."""
    number = _claim(notification_id)
    if number is None:
        return _unclaimed(notification_id)
    notification = Notification.objects.select_related("channel", "alert__rule").get(pk=notification_id)
    attempt = _attempt_start(notification, number, worker)
    channel = notification.channel
    if not channel.enabled:
        _finish(notification, number, attempt, AttemptStatus.FAILED, f"channel disabled: {channel.disabled_reason}")
        return Outcome("failed")
    started = time.monotonic()
    try:
        message = message_render(notification=notification, with_plot=channel.kind == "email")
        plugin = get_channel(channel.kind)(config=channel.config, secrets=channel.secrets)
        http_status = plugin.send(message)
    except DeliveryError as exc:
        return _failed(notification, number, attempt, exc, started)
    except Exception as exc:  # a bug or an unexpected library error must not leave the claim hanging
        logger.exception("notification send failed", extra={"notification": notification_id})
        return _failed(notification, number, attempt, DeliveryError(f"{type(exc).__name__}: {exc}"), started)
    attempt.http_status = http_status
    attempt.latency_ms = _ms(started)
    _finish(notification, number, attempt, AttemptStatus.SENT)
    Channel.objects.filter(pk=channel.pk).update(last_sent_at=timezone.now())
    return Outcome("sent")


def _claim(notification_id: int) -> int | None:
    """The attempt number when this sender now holds the notification, else None."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {TABLE} SET status = 'sending', attempts = attempts + 1, updated_at = clock_timestamp(),
                claimed_until = clock_timestamp() + make_interval(secs => %s)
            WHERE id = %s AND not_before <= clock_timestamp()
              AND (status = 'pending' OR (status = 'sending' AND claimed_until < clock_timestamp()))
            RETURNING attempts
            """,
            [settings.ALERTS_SEND_LEASE_SECONDS, notification_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _unclaimed(notification_id: int) -> Outcome:
    """Why the claim failed: done, not due yet, or held by a live sender (wait for its lease)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT status, EXTRACT(EPOCH FROM (not_before - clock_timestamp())),
                EXTRACT(EPOCH FROM (claimed_until - clock_timestamp()))
            FROM {TABLE} WHERE id = %s
            """,
            [notification_id],
        )
        row = cursor.fetchone()
    if row is None or row[0] in (NotificationStatus.SENT, NotificationStatus.FAILED):
        return Outcome("done")
    status, due_in, lease_left = row
    wait = float(lease_left or 0) if status == NotificationStatus.SENDING else float(due_in or 0)
    return Outcome("wait", retry_in=max(wait, 0) + 0.5)


@transaction.atomic
def _attempt_start(notification: Notification, number: int, worker: str) -> DeliveryAttempt:
    # Attempts left "sending" belong to senders whose lease ran out: they died somewhere in the send.
    notification.delivery_attempts.filter(status=AttemptStatus.SENDING).update(
        status=AttemptStatus.ABANDONED, error="its sender stopped before finishing (lease expired)"
    )
    return DeliveryAttempt.objects.create(
        notification=notification, number=number, started_at=timezone.now(), worker=worker[:200]
    )


def _failed(notification, number: int, attempt: DeliveryAttempt, exc: DeliveryError, started: float) -> Outcome:
    attempt.http_status, attempt.latency_ms = exc.http_status, _ms(started)
    if exc.permanent:
        _finish(notification, number, attempt, AttemptStatus.FAILED, str(exc))
        channel_disable(channel_id=notification.channel_id, reason=f"{timezone.now():%Y-%m-%d %H:%M} UTC: {exc}")
        return Outcome("failed")
    if number >= settings.ALERTS_MAX_ATTEMPTS:
        _finish(notification, number, attempt, AttemptStatus.FAILED, f"gave up after {number} attempts: {exc}")
        return Outcome("failed")
    backoff = min(settings.ALERTS_RETRY_BASE_SECONDS * 2 ** (number - 1), MAX_BACKOFF_S)
    _finish(notification, number, attempt, AttemptStatus.RETRY, str(exc), retry_in=backoff)
    return Outcome("retry", retry_in=backoff)


@transaction.atomic
def _finish(notification, number: int, attempt: DeliveryAttempt, status: str, error: str = "", retry_in=None) -> None:
    """Record the outcome, on the notification only while this sender's claim is the current one."""
    fields = {"claimed_until": None, "error": error, "updated_at": timezone.now()}
    if status == AttemptStatus.SENT:
        fields.update(status=NotificationStatus.SENT, sent_at=timezone.now())
    elif status == AttemptStatus.FAILED:
        fields.update(status=NotificationStatus.FAILED)
    else:  # retry: pending again once the backoff has passed; the sweeper expects its task by then
        later = timezone.now() + timedelta(seconds=retry_in)
        fields.update(status=NotificationStatus.PENDING, not_before=later, enqueued_at=later)
    Notification.objects.filter(pk=notification.pk, status=NotificationStatus.SENDING, attempts=number).update(**fields)
    attempt.status, attempt.error = status, error
    attempt.save(update_fields=["status", "error", "http_status", "latency_ms"])


def channel_disable(*, channel_id: int, reason: str) -> None:
    Channel.objects.filter(pk=channel_id, enabled=True).update(
        enabled=False, disabled_reason=reason[:2000], disabled_at=timezone.now()
    )


def notifications_redispatch_due() -> list[int]:
    """Due notifications whose task has not run for ALERTS_REDISPATCH_SECONDS since it was last enqueued
    (lost with a killed worker, or never sent after commit), and dead senders' claims: marked enqueued now;
    the caller enqueues them again (a copy of a task that still runs finds nothing to do)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {TABLE} SET enqueued_at = clock_timestamp()
            WHERE id IN (
                SELECT id FROM {TABLE}
                WHERE status IN ('pending', 'sending') AND not_before <= clock_timestamp()
                  AND COALESCE(enqueued_at, created_at) < clock_timestamp() - make_interval(secs => %s)
                  AND (status = 'pending' OR claimed_until < clock_timestamp())
                ORDER BY not_before LIMIT 1000 FOR UPDATE SKIP LOCKED
            )
            RETURNING id
            """,
            [settings.ALERTS_REDISPATCH_SECONDS],
        )
        return sorted(row[0] for row in cursor.fetchall())


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
