"""Feedback listens to detection: new incidents that repeat a labelled false positive are suppressed."""

from django.dispatch import receiver

from detectors.signals import anomalies_created
from feedback.services.suppression import suppress_repeats


@receiver(anomalies_created, dispatch_uid="feedback.suppress_repeats")
def on_anomalies_created(sender, run_id, anomaly_ids: list[int], **kwargs) -> None:
    suppress_repeats(anomaly_ids=anomaly_ids)


__all__ = ["on_anomalies_created"]
