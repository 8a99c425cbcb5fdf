"""Verdicts: store them (with the audit log), and make each one change what the platform does next.

- confirmed: a positive example; its span is kept out of training data.
- false positive: a negative example; new incidents near-identical to it are suppressed (see suppression.py).
- expected change: its span is kept out of training data and it is never raised again.
- new normal: the incident closes as re-baselined and a new model version is fitted from its start.
- missed: an anomaly the detector did not raise, marked on a series range: a positive example.
Every analyst label counts towards the detector's next retraining (see retraining.py).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from detectors.models import (
    Anomaly,
    CloseReason,
    Detector,
    IncidentKind,
    IncidentStatus,
    ReviewStatus,
    Severity,
)
from feedback.models import AuditLog, Label, ReviewClaim, Verdict
from ingestion.models import Series

REVIEW_STATUS = {
    Verdict.CONFIRMED: ReviewStatus.CONFIRMED,
    Verdict.FALSE_POSITIVE: ReviewStatus.FALSE_POSITIVE,
    Verdict.EXPECTED: ReviewStatus.EXPECTED,
    Verdict.NEW_NORMAL: ReviewStatus.NEW_NORMAL,
}
INCIDENT_VERDICTS = tuple(REVIEW_STATUS)


class LabelError(ValueError):
    """A verdict that cannot be given (shown to the user as a 400)."""


def anomalies_label(*, anomalies: list[Anomaly], verdict: str, user, note: str = "") -> list[Label]:
    """Give each incident the verdict, in one transaction; the previous verdict of each stays in history."""
    if verdict not in INCIDENT_VERDICTS:
        raise LabelError(f"{verdict!r} is not a verdict on an incident; use one of {', '.join(INCIDENT_VERDICTS)}.")
    if any(a.kind != IncidentKind.OBSERVED for a in anomalies):
        raise LabelError("Only incidents a detector found can be labelled; predicted and missed ones cannot.")
    ids = [a.pk for a in anomalies]
    with transaction.atomic():
        locked = list(Anomaly.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
        Label.objects.filter(anomaly_id__in=ids, current=True).update(current=False, updated_at=timezone.now())
        labels = Label.objects.bulk_create([
            Label(detector_id=a.detector_id, series_id=a.series_id, anomaly=a, verdict=verdict, start_ts=a.start_ts,
                  end_ts=max(a.end_ts, a.start_ts), note=note, created_by=_user(user))
            for a in locked
        ])  # fmt: skip
        Anomaly.objects.filter(pk__in=ids).update(review_status=REVIEW_STATUS[verdict], updated_at=timezone.now())
        ReviewClaim.objects.filter(anomaly_id__in=ids).delete()
        _audit(user, labels, action="label")
        if verdict == Verdict.NEW_NORMAL:
            _rebaseline([a for a in locked if a.series_id is not None])
        _after_labels({a.detector_id for a in locked})
    return labels


def missed_mark(*, detector: Detector, series: Series, start: datetime, end: datetime, user, note: str = "") -> Label:
    """An anomaly the detector did not raise: stored as a `missed` incident with its label."""
    if end < start:
        raise LabelError("end must not be before start.")
    if series.dataset_id != detector.dataset_id:
        raise LabelError("The series is not in the detector's dataset.")
    with transaction.atomic():
        incident = Anomaly.objects.create(
            kind=IncidentKind.MISSED, detector=detector, series=series, start_ts=start, end_ts=end, peak_ts=start,
            closed_ts=end, last_seen=end, score=0.0, severity=Severity.LOW, status=IncidentStatus.CLOSED,
            review_status=ReviewStatus.CONFIRMED,
            explanation={"text": "Marked by an analyst as an anomaly the detector did not raise." + (
                f" Note: {note}" if note else "")},
        )  # fmt: skip
        label = Label.objects.create(
            detector=detector, series=series, anomaly=incident, verdict=Verdict.MISSED, start_ts=start, end_ts=end,
            note=note, created_by=_user(user),
        )  # fmt: skip
        _audit(user, [label], action="missed")
        _after_labels({detector.pk})
    return label


def _rebaseline(incidents: list[Anomaly]) -> None:
    """Close the incidents as re-baselined now, and fit each series a new model from the incident's start
    once the transaction commits (a worker does the fitting)."""
    from feedback import tasks

    now = timezone.now()
    for incident in incidents:
        if incident.status == IncidentStatus.OPEN:
            closed = incident.last_seen or incident.end_ts
            Anomaly.objects.filter(pk=incident.pk, status=IncidentStatus.OPEN).update(
                status=IncidentStatus.CLOSED, close_reason=CloseReason.REBASELINED, closed_ts=closed, updated_at=now
            )
        args = (incident.detector_id, incident.series_id, incident.start_ts.isoformat())
        transaction.on_commit(lambda args=args: tasks.rebaseline.delay(*args))


def _after_labels(detector_ids: set[int]) -> None:
    """Queue a retraining for each detector with enough analyst labels since its last one."""
    from feedback.services.retraining import retraining_due_from_labels

    for detector_id in detector_ids:
        retraining_due_from_labels(detector_id=detector_id)


def _audit(user, labels: list[Label], *, action: str) -> None:
    teams = dict(Detector.objects.filter(pk__in={x.detector_id for x in labels}).values_list("pk", "dataset__team_id"))
    AuditLog.objects.bulk_create([
        AuditLog(team_id=teams[x.detector_id], actor=_user(user), action=action, target_type="anomaly",
                 target_id=x.anomaly_id, data={"label": x.pk, "verdict": x.verdict, "note": x.note})
        for x in labels
    ])  # fmt: skip


def _user(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


__all__ = ["LabelError", "anomalies_label", "missed_mark"]
