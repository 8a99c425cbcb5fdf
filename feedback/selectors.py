"""Reads for the feedback loop: labels in force, likeness between incidents, the review queue."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from detectors.algorithms.triage import distance, near_identical
from detectors.models import Anomaly, IncidentKind, IncidentStatus, ReviewStatus
from detectors.services.labelled import signature_of
from feedback.models import Label, LabelSource, Verdict
from teams.selectors import team_ids_for_user


def labels_for_user(*, user) -> QuerySet[Label]:
    return Label.objects.filter(detector__dataset__team__in=team_ids_for_user(user=user))


def analyst_labels(*, detector_id: int) -> QuerySet[Label]:
    """The verdicts in force that analysts gave (the ones models learn from)."""
    return Label.objects.filter(detector_id=detector_id, current=True, source=LabelSource.ANALYST)


def false_positive_match(*, anomaly: Anomaly) -> Label | None:
    """The analyst's false-positive label whose incident is near-identical to this one (same detector and
    series, same shape and direction, similar size and length), or None."""
    if anomaly.kind != IncidentKind.OBSERVED or anomaly.series_id is None:
        return None
    labels = (
        analyst_labels(detector_id=anomaly.detector_id)
        .filter(series_id=anomaly.series_id, verdict=Verdict.FALSE_POSITIVE, anomaly__isnull=False)
        .exclude(anomaly_id=anomaly.pk)
        .select_related("anomaly")
        .order_by("-created_at")
    )
    mine = signature_of(anomaly)
    return next((label for label in labels if near_identical(mine, signature_of(label.anomaly))), None)


def similar_labelled(*, anomaly: Anomaly, limit: int = 3, candidates: int = 500) -> list[tuple[Label, float]]:
    """The labelled incidents of the same detector most like this one, with their distance (0: alike)."""
    labels = list(
        analyst_labels(detector_id=anomaly.detector_id)
        .filter(anomaly__isnull=False, anomaly__kind=IncidentKind.OBSERVED)
        .exclude(anomaly_id=anomaly.pk)
        .select_related("anomaly", "series")
        .order_by("-created_at")[:candidates]
    )
    mine = signature_of(anomaly)
    scored = [(label, distance(mine, signature_of(label.anomaly)) + 0.5 * (label.series_id != anomaly.series_id))
              for label in labels]  # fmt: skip
    return sorted(scored, key=lambda pair: pair[1])[:limit]


def review_url(anomaly_id: int) -> str:
    """Where an incident is reviewed in the queue (absolute, for messages)."""
    return f"{settings.SITE_URL.rstrip('/')}/review/{anomaly_id}/"


def queue_candidates(*, user, dataset: int | None = None, detector: int | None = None,
                     severity: str | None = None, status: str | None = None) -> QuerySet[Anomaly]:  # fmt: skip
    """Incidents waiting for a verdict in the user's teams, with the queue's filters."""
    teams = team_ids_for_user(user=user)
    found = Anomaly.objects.filter(
        kind=IncidentKind.OBSERVED, detector__dataset__team__in=teams, review_status=ReviewStatus.UNREVIEWED
    )
    if dataset:
        found = found.filter(detector__dataset_id=dataset)
    if detector:
        found = found.filter(detector_id=detector)
    if severity:
        found = found.filter(severity=severity)
    if status in (IncidentStatus.OPEN, IncidentStatus.CLOSED):
        found = found.filter(status=status)
    return found


__all__ = ["analyst_labels", "false_positive_match", "labels_for_user", "queue_candidates", "review_url",
           "similar_labelled"]  # fmt: skip
