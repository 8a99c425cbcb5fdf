"""What analysts' verdicts change in detection (the verdicts themselves live in the feedback app).

- Spans of incidents confirmed real, marked expected or marked missed are kept out of what a model is
  fitted on: their points are replaced by a straight line between the points around them, so a model
  never learns an anomaly as normal and the series keeps its regular spacing.
- A model version may carry a triage learnt from labels: new incidents it rates as likely false alarms
  are stored as suppressed (shown, never raised).
"""

from __future__ import annotations

import numpy as np
from django.db.models import Q

from detectors.algorithms.triage import Signature, Triage
from detectors.models import Anomaly, IncidentKind, ReviewStatus
from ingestion.bulk import us_from_utc

# Verdicts whose span is not normal behaviour.
NOT_NORMAL = (ReviewStatus.CONFIRMED, ReviewStatus.EXPECTED)


def excluded_spans(*, detector, series_ids: list[int]) -> dict[int, list[tuple[int, int]]]:
    """{series id: [(start µs, end µs)]} kept out of training, in one query."""
    rows = Anomaly.objects.filter(detector=detector, series_id__in=series_ids).filter(
        Q(review_status__in=NOT_NORMAL) | Q(kind=IncidentKind.MISSED)
    )
    out: dict[int, list[tuple[int, int]]] = {}
    for series_id, start, end in rows.values_list("series_id", "start_ts", "end_ts"):
        out.setdefault(series_id, []).append((us_from_utc(start), us_from_utc(end)))
    return out


def entity_spans(*, detector, entities) -> dict[int, list[tuple[int, int]]]:
    """{lead id: spans kept out of training} of each entity: what is not normal on any member is not normal
    for the entity (a missed anomaly marked on a member's plot, say)."""
    spans = excluded_spans(detector=detector, series_ids=[sid for entity in entities for sid in entity.members])
    return {entity.lead: sorted(s for sid in entity.members for s in spans.get(sid, [])) for entity in entities}


def without_spans(ts_us: np.ndarray, values: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """`values` with the points inside `spans` replaced by a line between the nearest points outside."""
    if not spans or not len(ts_us):
        return values
    inside = np.zeros(len(ts_us), bool)
    for start, end in spans:
        inside[np.searchsorted(ts_us, start) : np.searchsorted(ts_us, end, side="right")] = True
    if not inside.any() or inside.all():
        return values
    out = np.array(values, dtype=float, copy=True)
    outside = ~inside
    columns = out.reshape(len(out), -1)
    for column in columns.T:
        column[inside] = np.interp(ts_us[inside], ts_us[outside], column[outside])
    return columns.reshape(out.shape)


def triage_held_back(*, triage_state: dict, series_id: int, signatures: list[Signature]) -> np.ndarray:
    """Which of these incidents the model version's triage holds back (all False without one)."""
    triage = Triage.from_state(triage_state)
    if triage is None or not signatures:
        return np.zeros(len(signatures), bool)
    return ~triage.keeps(signatures, [series_id] * len(signatures))


def signature_of(anomaly: Anomaly) -> Signature:
    return Signature.of(
        explanation=anomaly.explanation, value=anomaly.value, expected=anomaly.expected, lower=anomaly.lower,
        upper=anomaly.upper, points=anomaly.points, score=anomaly.score,
    )  # fmt: skip
