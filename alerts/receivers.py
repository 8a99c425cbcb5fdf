"""Alerts listen to detection: incidents opened, escalated and resolved (signals sent after commit)."""

from django.dispatch import receiver

from alerts import tasks
from alerts.services.alerting import incident_event_record
from detectors.signals import anomalies_created, incident_escalated, incident_resolved


@receiver(anomalies_created, dispatch_uid="alerts.opened")
def on_anomalies_created(sender, anomaly_ids: list[int], **kwargs) -> None:
    tasks.on_incidents.delay(incident_event_record(event="opened", anomaly_ids=anomaly_ids).pk)


@receiver(incident_escalated, dispatch_uid="alerts.escalated")
def on_incident_escalated(sender, anomaly_ids: list[int], **kwargs) -> None:
    tasks.on_incidents.delay(incident_event_record(event="escalated", anomaly_ids=anomaly_ids).pk)


@receiver(incident_resolved, dispatch_uid="alerts.resolved")
def on_incident_resolved(sender, anomaly_ids: list[int], **kwargs) -> None:
    tasks.on_incidents.delay(incident_event_record(event="resolved", anomaly_ids=anomaly_ids).pk)
