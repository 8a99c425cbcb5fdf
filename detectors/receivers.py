"""Detection listens to ingestion: new points flag their series and wake a coalesced realtime task, and
points that land behind a cursor (late data) make the next run score again from them. Predicted incidents
listen to forecasting: crossings open or move them, later forecasts withdraw them."""

from django.dispatch import receiver

from detectors import tasks
from detectors.services.predictions import predictions_from_crossings, predictions_withdraw
from detectors.services.runs import late_points_mark, realtime_mark_pending
from forecasting.models import Forecast, ForecastCrossing
from forecasting.signals import crossings_predicted, forecasts_made
from ingestion.models import Dataset
from ingestion.signals import points_arrived


@receiver(points_arrived, sender=Dataset, dispatch_uid="detectors.realtime")
def on_points_arrived(sender, dataset_id: int, series_ranges: dict, **kwargs) -> None:
    late_points_mark(dataset_id=dataset_id, series_ranges=series_ranges)
    tasks.wake_realtime(realtime_mark_pending(dataset_id=dataset_id, series_ids=list(series_ranges)))


@receiver(crossings_predicted, sender=ForecastCrossing, dispatch_uid="detectors.predicted")
def on_crossings_predicted(sender, crossing_ids: list[int], **kwargs) -> None:
    predictions_from_crossings(crossing_ids=crossing_ids)


@receiver(forecasts_made, sender=Forecast, dispatch_uid="detectors.withdrawn")
def on_forecasts_made(sender, forecast_ids: list[int], **kwargs) -> None:
    predictions_withdraw(forecast_ids=forecast_ids)
