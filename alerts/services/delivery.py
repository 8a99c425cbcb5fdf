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

from django.conf import settings
from django.db import connection
from django.utils import timezone

from alerts.channels.base import DeliveryError
from alerts.channels.registry import get_channel
from alerts.models import AttemptStatus, Channel, DeliveryAttempt, Notification, NotificationStatus
from alerts.services.messages import message_render

logger = logging.getLogger(__name__)
MAX_BACKOFF_S = 600
TABLE = Notification._meta.db_table
ATTEMPTS = DeliveryAttempt._meta.db_table
CHANNELS = Channel._meta.db_table


@dataclass
class Outcome:
    status: str  # sent, done (nothing to do), failed, retry, wait
    retry_in: float | None = None


def notification_deliver(*, notification_id: int, worker: str = "", cache: dict | None = None) -> Outcome:
    """Send the notification unless it was sent, failed for good, is not due, or another sender holds it.

    `cache`: shared by the notifications of one alert event sent together (rendered once).
    """
    claim = _claim(notification_id, worker)
    if claim is None:
        return _unclaimed(notification_id)
    notification = Notification.objects.select_related("channel", "alert__rule").get(pk=notification_id)
    channel = notification.channel
    if not channel.enabled and notification.event != "test":  # a test may check a fix before enabling it again
        _finish(claim, AttemptStatus.FAILED, error=f"channel disabled: {channel.disabled_reason}")
        return Outcome("failed")
    started = time.monotonic()
    try:
        cls = get_channel(channel.kind)
        message = message_render(notification=notification, parts=cls.parts, cache=cache)
        plugin = cls(config=channel.config, secrets=channel.secrets)
        http_status = plugin.send(message)
    except DeliveryError as exc:
        return _failed(claim, notification.channel_id, exc, started)
    except Exception as exc:  # a bug or an unexpected library error must not leave the claim hanging
        logger.exception("notification send failed", extra={"notification": notification_id})
        return _failed(claim, notification.channel_id, DeliveryError(f"{type(exc).__name__}: {exc}"), started)
    _finish(claim, AttemptStatus.SENT, http_status=http_status, latency_ms=_ms(started))
    return Outcome("sent")


@dataclass
class _Claim:
    notification_id: int
    number: int  # the attempt number, which is also the claim's token
    attempt_id: int


def _claim(notification_id: int, worker: str) -> _Claim | None:
    """Hold the notification and log the attempt, in one statement; None when it cannot be held.

    Attempts still "sending" belong to senders whose lease ran out: they died somewhere in the send.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH claimed AS (
                UPDATE {TABLE} SET status = 'sending', attempts = attempts + 1, updated_at = clock_timestamp(),
                    claimed_until = clock_timestamp() + make_interval(secs => %s)
                WHERE id = %s AND not_before <= clock_timestamp()
                  AND (status = 'pending' OR (status = 'sending' AND claimed_until < clock_timestamp()))
                RETURNING id, attempts
            ), abandoned AS (
                UPDATE {ATTEMPTS} SET status = 'abandoned', error = 'its sender stopped before finishing'
                WHERE notification_id IN (SELECT id FROM claimed) AND status = 'sending'
            )
            INSERT INTO {ATTEMPTS} (notification_id, number, status, started_at, error, worker)
            SELECT id, attempts, 'sending', clock_timestamp(), '', %s FROM claimed
            RETURNING notification_id, number, id
            """,
            [settings.ALERTS_SEND_LEASE_SECONDS, notification_id, worker[:200]],
        )
        row = cursor.fetchone()
    return _Claim(*row) if row else None


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


def _failed(claim: _Claim, channel_id: int, exc: DeliveryError, started: float) -> Outcome:
    measured = {"http_status": exc.http_status, "latency_ms": _ms(started)}
    if exc.permanent:
        _finish(claim, AttemptStatus.FAILED, error=str(exc), **measured)
        channel_disable(channel_id=channel_id, reason=f"{timezone.now():%Y-%m-%d %H:%M} UTC: {exc}")
        return Outcome("failed")
    if claim.number >= settings.ALERTS_MAX_ATTEMPTS:
        _finish(claim, AttemptStatus.FAILED, error=f"gave up after {claim.number} attempts: {exc}", **measured)
        return Outcome("failed")
    backoff = min(settings.ALERTS_RETRY_BASE_SECONDS * 2 ** (claim.number - 1), MAX_BACKOFF_S)
    _finish(claim, AttemptStatus.RETRY, error=str(exc), retry_in=backoff, **measured)
    return Outcome("retry", retry_in=backoff)


# How the notification changes with the attempt's outcome (retry: pending again once the backoff has passed,
# when the sweep expects its task to have run).
_OUTCOME_SET = {
    AttemptStatus.SENT: "status = 'sent', sent_at = clock_timestamp()",
    AttemptStatus.FAILED: "status = 'failed'",
    AttemptStatus.RETRY: "status = 'pending', not_before = clock_timestamp() + make_interval(secs => %(retry_in)s), "
    "enqueued_at = clock_timestamp() + make_interval(secs => %(retry_in)s)",
}


def _finish(claim: _Claim, status: str, *, error: str = "", http_status=None, latency_ms=None, retry_in=0) -> None:
    """Record the attempt, and its outcome on the notification only while this claim is the current one."""
    params = {"id": claim.notification_id, "number": claim.number, "attempt": claim.attempt_id, "status": status,
              "error": error, "http_status": http_status, "latency_ms": latency_ms, "retry_in": retry_in}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH outcome AS (
                UPDATE {TABLE} SET {_OUTCOME_SET[status]}, claimed_until = NULL, error = %(error)s,
                    updated_at = clock_timestamp()
                WHERE id = %(id)s AND status = 'sending' AND attempts = %(number)s
                RETURNING channel_id
            ), sent AS (
                UPDATE {CHANNELS} SET last_sent_at = clock_timestamp()
                WHERE %(status)s = 'sent' AND id IN (SELECT channel_id FROM outcome)
            )
            UPDATE {ATTEMPTS} SET status = %(status)s, error = %(error)s, http_status = %(http_status)s,
                latency_ms = %(latency_ms)s
            WHERE id = %(attempt)s
            """,
            params,
        )


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
