"""Thin tasks: alerts for incidents, sending one notification, re-enqueueing lost ones (beat)."""

from __future__ import annotations

from celery import shared_task
from django.db.models import Value
from django.db.models.functions import Greatest
from django.utils import timezone

from alerts.models import Notification
from alerts.services import alerting, delivery
from common.tasks import TRANSIENT


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=8)
def on_incidents(event_id: int) -> None:
    send_when_due(alerting.incident_event_handle(event_id=event_id))


# A worker that dies mid-send puts the message back (reject_on_worker_lost); the claim in the service
# makes the copy wait for the dead sender's lease, then send, or find it sent and stop.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, autoretry_for=TRANSIENT,
             retry_backoff=True)  # fmt: skip
def send_notification(self, notification_id: int) -> str:
    outcome = delivery.notification_deliver(notification_id=notification_id, worker=self.request.hostname or "")
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=8)
def send_notifications(notification_ids: list[int]) -> None:
    """The channels of one alert event, rendered once; each one that must wait or retry goes on alone."""
    cache: dict = {}
    for notification_id in notification_ids:
        outcome = delivery.notification_deliver(notification_id=notification_id, cache=cache,
                                                worker=send_notifications.request.hostname or "")  # fmt: skip
        if outcome.retry_in is not None:
            send_notification.apply_async((notification_id,), countdown=outcome.retry_in)


@shared_task(acks_late=True)
def redispatch_due() -> None:
    """Beat: tasks lost with a killed worker (Redis keeps them unacknowledged for an hour) run again."""
    for event_id in alerting.incident_events_redispatch_due():
        on_incidents.delay(event_id)
    for notification_id in delivery.notifications_redispatch_due():
        send_notification.delay(notification_id)


def send_when_due(notification_ids: list[int]) -> None:
    """Enqueue the notifications to run when due (grouping window or quiet hours over), one task per alert
    event and time."""
    now = timezone.now()
    rows = Notification.objects.filter(pk__in=notification_ids)
    together: dict[tuple, list[int]] = {}
    for pk, alert_id, event, not_before in rows.order_by("pk").values_list("pk", "alert_id", "event", "not_before"):
        together.setdefault((alert_id, event, not_before), []).append(pk)
    rows.update(enqueued_at=Greatest(Value(now), "not_before"))  # when the sweeper expects its task to have run
    for (_, _, not_before), ids in together.items():
        send_notifications.apply_async((ids,), eta=not_before if not_before > now else None)
