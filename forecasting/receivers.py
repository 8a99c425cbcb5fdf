"""Tracking listens to ingestion: new points fill in the actuals of the forecasts that cover them."""

from django.dispatch import receiver

from common.tasks import send_or_defer
from forecasting import tasks
from forecasting.models import ForecastConfig
from ingestion.models import Dataset
from ingestion.signals import points_arrived


@receiver(points_arrived, sender=Dataset, dispatch_uid="forecasting.tracking")
def on_points_arrived(sender, dataset_id: int, series_ranges: dict, **kwargs) -> None:
    if not series_ranges or not ForecastConfig.objects.filter(dataset_id=dataset_id).exists():
        return
    since = min(first for first, _ in series_ranges.values())
    send_or_defer(tasks.track_actuals, (list(series_ranges), since.isoformat()))
