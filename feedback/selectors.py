"""Reads for the feedback loop: labels in force, likeness between incidents, the review queue."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet

from detectors.algorithms.triage import distance, near_identical
from detectors.models import Anomaly, IncidentKind, IncidentStatus, ReviewStatus
from detectors.selectors import PlotData, incident_plot_data
from detectors.services.labelled import signature_of
from feedback.models import Label, LabelSource, Verdict
from teams.selectors import team_ids_for_user


def labels_for_user(*, user) -> QuerySet[Label]:
    return Label.objects.filter(detector__dataset__team__in=team_ids_for_user(user=user))


def analyst_labels(*, detector_id: int | None = None) -> QuerySet[Label]:
    """The verdicts in force that analysts gave (the ones models learn from), of one detector or of all."""
    labels = Label.objects.filter(current=True, source=LabelSource.ANALYST)
    return labels if detector_id is None else labels.filter(detector_id=detector_id)


def false_positives(*, anomalies: list[Anomaly]) -> dict[tuple[int, int], list[Label]]:
    """{(detector, series): the analysts' false-positive labels in force there, newest first}, one query."""
    labels = (
        analyst_labels().filter(
            detector_id__in={a.detector_id for a in anomalies}, series_id__in={a.series_id for a in anomalies},
            verdict=Verdict.FALSE_POSITIVE, anomaly__isnull=False,
        )
        .select_related("anomaly")
        .order_by("-created_at")
    )  # fmt: skip
    out: dict[tuple[int, int], list[Label]] = {}
    for label in labels:
        out.setdefault((label.detector_id, label.series_id), []).append(label)
    return out


def false_positive_match(*, anomaly: Anomaly, labels: dict | None = None) -> Label | None:
    """The analyst's false-positive label whose incident is near-identical to this one (same detector and
    series, same shape and direction, similar size and length), or None. `labels`: `false_positives` of a
    batch of incidents, read once for all of them."""
    if anomaly.kind != IncidentKind.OBSERVED or anomaly.series_id is None:
        return None
    labels = false_positives(anomalies=[anomaly]) if labels is None else labels
    mine = signature_of(anomaly)
    return next(
        (label for label in labels.get((anomaly.detector_id, anomaly.series_id), [])
         if label.anomaly_id != anomaly.pk and near_identical(mine, signature_of(label.anomaly))),
        None,
    )  # fmt: skip


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


def queue_candidates(*, user, dataset: int | None = None, detector: int | None = None, severity: str | None = None,
                     status: str | None = None, writable: bool = False) -> QuerySet[Anomaly]:  # fmt: skip
    """Incidents waiting for a verdict in the user's teams (`writable`: those where they may label), with the
    queue's filters."""
    teams = team_ids_for_user(user=user, writable=writable)
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


@dataclass
class ReviewItem:
    """What the review page shows of one incident."""

    anomaly: Anomaly
    plot: PlotData | None
    similar: list[tuple[Label, float]]
    departed: list[tuple[str, str]]
    writable: bool
    label: Label | None = None  # the verdict in force, if any


def review_items(*, user, anomalies: list[Anomaly]) -> list[ReviewItem]:
    """Each incident with its plot (one query for all windows), its three most similar labelled incidents,
    the columns that departed, its verdict in force and whether the user may write in its team."""
    writable = set(team_ids_for_user(user=user, writable=True).values_list("team_id", flat=True))
    plots = incident_plot_data(anomalies=anomalies)
    current = {x.anomaly_id: x for x in Label.objects.filter(anomaly__in=anomalies, current=True).select_related(
        "created_by")}  # fmt: skip
    return [
        ReviewItem(
            anomaly=a,
            plot=plots.get(a.pk),
            departed=departed_columns(a),
            label=current.get(a.pk),
            similar=similar_labelled(anomaly=a) if a.detector_id else [],
            writable=a.detector_id is not None and a.detector.dataset.team_id in writable,
        )
        for a in anomalies
    ]


def departed_columns(anomaly: Anomaly) -> list[tuple[str, str]]:
    """(column, how far) for the columns that left their band (several columns scored jointly), or the
    features that made a table row unusual, strongest first; empty for a series scored alone."""
    columns = anomaly.explanation.get("columns") or {}
    columns = {name: d for name, d in columns.items() if name} if isinstance(columns, dict) else {}
    if columns:  # a series scored alone names no column: nothing to list
        ranked = sorted(columns.items(), key=lambda kv: -abs(kv[1].get("peak_sigma", 0)))
        return [(name, f"peak {d.get('peak_sigma', 0):+.1f}σ, median {d.get('median_sigma', 0):+.1f}σ")
                for name, d in ranked]  # fmt: skip
    if anomaly.record_id is None:  # a series' "features" are its detector's components, not columns
        return []
    features = anomaly.explanation.get("features") or {}
    return [(name, f"contribution {weight:+.3g}") for name, weight in features.items()]


__all__ = ["ReviewItem", "analyst_labels", "departed_columns", "false_positive_match", "labels_for_user",
           "queue_candidates", "review_items", "review_url", "similar_labelled"]  # fmt: skip
