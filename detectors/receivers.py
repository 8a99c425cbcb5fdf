"""Detection listens to ingestion: new points flag their series and wake a coalesced realtime task, and
points that land behind a cursor (late data) make the next run score again from them."""

from django.dispatch import receiver

from detectors import tasks
from detectors.services.runs import late_points_mark, realtime_mark_pending
from ingestion.models import Dataset
from ingestion.signals import points_arrived


@receiver(points_arrived, sender=Dataset, dispatch_uid="detectors.realtime")
def on_points_arrived(sender, dataset_id: int, series_ranges: dict, **kwargs) -> None:
    late_points_mark(dataset_id=dataset_id, series_ranges=series_ranges)
    tasks.wake_realtime(realtime_mark_pending(dataset_id=dataset_id, series_ids=list(series_ranges)))
