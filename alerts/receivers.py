"""Alerts listen to detection: incidents opened, escalated and resolved (signals sent after commit).

Each is kept as an event row, then handled by a task (the sweep re-enqueues it if the task is lost).
"""

from django.dispatch import receiver

from alerts import tasks
from alerts.selectors import alerting_enabled
from alerts.services.alerting import incident_event_record
from detectors.signals import anomalies_created, incident_escalated, incident_resolved


def _enqueue(event: str, anomaly_ids: list[int]) -> None:
    if anomaly_ids and alerting_enabled():
        tasks.on_incidents.delay(incident_event_record(event=event, anomaly_ids=anomaly_ids).pk)


@receiver(anomalies_created, dispatch_uid="alerts.opened")
def on_anomalies_created(sender, anomaly_ids: list[int], **kwargs) -> None:
    _enqueue("opened", anomaly_ids)


@receiver(incident_escalated, dispatch_uid="alerts.escalated")
def on_incident_escalated(sender, anomaly_ids: list[int], **kwargs) -> None:
    _enqueue("escalated", anomaly_ids)


@receiver(incident_resolved, dispatch_uid="alerts.resolved")
def on_incident_resolved(sender, anomaly_ids: list[int], **kwargs) -> None:
    _enqueue("resolved", anomaly_ids)
