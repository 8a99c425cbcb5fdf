"""Realtime detection listens to ingestion: new points flag their series and wake a coalesced task."""

from django.dispatch import receiver

from detectors import tasks
from detectors.services.runs import realtime_mark_pending
from ingestion.models import Dataset
from ingestion.signals import points_arrived


@receiver(points_arrived, sender=Dataset, dispatch_uid="detectors.realtime")
def on_points_arrived(sender, dataset_id: int, series_ranges: dict, **kwargs) -> None:
    tasks.wake_realtime(realtime_mark_pending(dataset_id=dataset_id, series_ids=list(series_ranges)))
