"""Reads for detection: which series a detector watches, its anomalies and runs."""

from __future__ import annotations

from django.db.models import QuerySet

from detectors.models import Anomaly, Detector
from ingestion.models import Series
from teams.selectors import team_ids_for_user


def detector_series_ids(*, detector: Detector, among: list[int] | None = None) -> list[int]:
    """Ids of the series the detector's selector matches (metric and label containment)."""
    series = Series.objects.filter(dataset_id=detector.dataset_id)
    if detector.metric:
        series = series.filter(metric=detector.metric)
    if detector.label_filter:
        series = series.filter(labels__contains=detector.label_filter)
    if among is not None:
        series = series.filter(pk__in=among)
    return list(series.order_by("pk").values_list("pk", flat=True))


def detectors_for_user(*, user) -> QuerySet[Detector]:
    return Detector.objects.filter(dataset__team__in=team_ids_for_user(user=user))


def anomalies_for_user(*, user) -> QuerySet[Anomaly]:
    return Anomaly.objects.filter(detector__dataset__team__in=team_ids_for_user(user=user))
