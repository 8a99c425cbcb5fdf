"""New incidents that repeat a labelled false positive are suppressed, not raised again.

Runs when a detection run stores incidents (detectors' `anomalies_created` signal): each new incident that
is near-identical to one an analyst labelled false positive on the same detector and series gets a label
of its own (source: similarity, pointing at that false positive) and the review status `suppressed`.
Such labels never teach a model; an analyst can overrule one with a verdict of their own.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from detectors.models import Anomaly, IncidentKind, ReviewStatus
from feedback.models import Label, LabelSource, Verdict
from feedback.selectors import false_positive_match, false_positives


def suppress_repeats(*, anomaly_ids: list[int]) -> list[int]:
    """Suppress the new incidents among these that match a false positive; returns their ids."""
    fresh = Anomaly.objects.filter(
        pk__in=anomaly_ids, kind=IncidentKind.OBSERVED, review_status=ReviewStatus.UNREVIEWED
    )
    candidates = list(fresh)
    labels = false_positives(anomalies=candidates)
    matches = [(a, false_positive_match(anomaly=a, labels=labels)) for a in candidates]
    matches = [(a, label) for a, label in matches if label is not None]
    if not matches:
        return []
    with transaction.atomic():
        Label.objects.bulk_create([
            Label(detector_id=a.detector_id, series_id=a.series_id, anomaly=a, verdict=Verdict.FALSE_POSITIVE,
                  start_ts=a.start_ts, end_ts=max(a.end_ts, a.start_ts), source=LabelSource.SIMILARITY,
                  similar_to=label, note=f"Near-identical to the false positive on incident {label.anomaly_id}.")
            for a, label in matches
        ])  # fmt: skip
        ids = [a.pk for a, _ in matches]
        Anomaly.objects.filter(pk__in=ids, review_status=ReviewStatus.UNREVIEWED).update(
            review_status=ReviewStatus.SUPPRESSED, updated_at=timezone.now()
        )
    return ids
