"""Reads for detection: which series a detector watches, its anomalies and runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Q, QuerySet

from detectors.models import Anomaly, Detector
from ingestion.models import Series
from teams.selectors import team_ids_for_user


def detector_series_ids(*, detector: Detector, among: list[int] | None = None) -> list[int]:
    """Ids of the series the detector's selector matches (metric and label containment)."""
    return list(_watched(detector, among).order_by("pk").values_list("pk", flat=True))


@dataclass(frozen=True)
class Entity:
    """Series a detector scores as one: a single series or, with `joint_metrics`, the metrics of one set of
    labels. Members are ordered by metric name; the first is the lead, which holds the entity's model
    versions, incidents and cursor."""

    members: tuple[int, ...]
    metrics: tuple[str, ...]

    @property
    def lead(self) -> int:
        return self.members[0]

    @property
    def joint(self) -> bool:
        return len(self.members) > 1


def detector_entities(*, detector: Detector, among: list[int] | None = None) -> list[Entity]:
    """The entities the detector watches, by lead id; `among`: only those with a member among these series.

    Without `joint_metrics` every series is an entity of its own.
    """
    if not detector.joint_metrics:
        rows = _watched(detector, among).values_list("pk", "metric")
        return [Entity((pk,), (metric,)) for pk, metric in rows.order_by("pk")]
    watched = _watched(detector, None)
    if among is not None:  # whole entities: every series with the labels of a touched one
        touched = watched.filter(pk__in=among).order_by().values_list("labels", flat=True).distinct()
        watched = watched.filter(labels__in=list(touched))
    groups: dict[str, list[tuple[str, int]]] = {}
    for pk, metric, labels in watched.values_list("pk", "metric", "labels"):
        groups.setdefault(json.dumps(labels, sort_keys=True), []).append((metric, pk))
    entities = [Entity(tuple(pk for _, pk in sorted(g)), tuple(m for m, _ in sorted(g))) for g in groups.values()]
    return sorted(entities, key=lambda entity: entity.lead)


def entities_of(*, detector: Detector, series_ids: list[int]) -> list[Entity]:
    """The entities these series belong to. Without `joint_metrics`: exactly these series, one each, as
    given (a chunk scores what it was handed, matched or not)."""
    if not detector.joint_metrics:
        return [Entity((sid,), ("",)) for sid in series_ids]
    return detector_entities(detector=detector, among=series_ids)


def _watched(detector: Detector, among: list[int] | None) -> QuerySet[Series]:
    series = Series.objects.filter(dataset_id=detector.dataset_id)
    if detector.metric:
        series = series.filter(metric=detector.metric)
    if detector.label_filter:
        series = series.filter(labels__contains=detector.label_filter)
    if among is not None:
        series = series.filter(pk__in=among)
    return series


def entity_points_read(
    *, entities: list[Entity], starts: list[datetime | None], end: datetime | None = None, history: int = 0
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{lead id: (ts µs, values)} of each entity from its start (and `history` points before), in one query.

    A single series gives its values as they are (n,). An entity of several metrics gives an (n, d) matrix,
    one column per metric in member order, at the timestamps every member has (an inner join): a timestamp
    missing in one metric is left out for all, never filled nor shifted onto a neighbour's row.
    """
    from ingestion.bulk import points_read_around

    member_starts = [(sid, start) for entity, start in zip(entities, starts, strict=True) for sid in entity.members]
    arrays = points_read_around(
        series_ids=[sid for sid, _ in member_starts], starts=[start for _, start in member_starts], end=end,
        history=history,
    ).split()  # fmt: skip
    return {entity.lead: aligned_members([arrays.get(sid, EMPTY) for sid in entity.members]) for entity in entities}


EMPTY = (np.empty(0, np.int64), np.empty(0))


def aligned_members(members: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One member's (ts, values) as they are; several as (common ts, (n, d) values) on the timestamps all have."""
    if len(members) == 1:
        return members[0]
    common = members[0][0]
    for ts_us, _ in members[1:]:
        common = np.intersect1d(common, ts_us, assume_unique=True)
    columns = [values[np.searchsorted(ts_us, common)] for ts_us, values in members]
    return common, np.column_stack(columns)


def detectors_for_user(*, user) -> QuerySet[Detector]:
    return Detector.objects.filter(dataset__team__in=team_ids_for_user(user=user))


def anomalies_for_user(*, user) -> QuerySet[Anomaly]:
    """Observed incidents through their detector, predicted ones through their forecast config."""
    teams = team_ids_for_user(user=user)
    # Id subqueries, not joins through the datasets: PostgreSQL then walks the start_ts index newest first
    # and stops at a page, instead of joining and sorting every anomaly (130 ms at 100,000; bench api).
    configs = Anomaly._meta.get_field("forecast_config").related_model.objects.filter(dataset__team__in=teams)
    mine = Q(detector__in=Detector.objects.filter(dataset__team__in=teams).values("pk"))
    return Anomaly.objects.filter(mine | Q(forecast_config__in=configs.values("pk")))


@dataclass
class PlotData:
    points: list[tuple[datetime, float]]
    markers: list[tuple[datetime, float]]
    band: list[tuple[datetime, float, float]]
    spans: list[tuple[datetime, datetime, str]] = field(default_factory=list)


def detector_plot_data(*, detector: Detector, series_id: int, last: int = 500) -> PlotData:
    """The series' latest points, its stored anomalies on them, and the active model's expected band.

    The band is recomputed from the active model over the same points (nothing is written).
    """
    from detectors.services.modelling import active_models
    from ingestion.bulk import points_read_around, timestamps_from_us

    latest = Series.objects.filter(pk=series_id).values_list("last_ts", flat=True).first()
    if latest is None:
        return PlotData([], [], [])
    arrays = points_read_around(series_ids=[series_id], starts=[latest + timedelta(microseconds=1)], history=last)
    ts_us, values = arrays.split().get(series_id, (np.empty(0, np.int64), np.empty(0)))
    stamps = timestamps_from_us(ts_us)
    points = list(zip(stamps.to_pydatetime(), values.tolist(), strict=True))
    anomalies = Anomaly.objects.filter(detector=detector, series_id=series_id)
    if len(stamps):
        anomalies = anomalies.filter(end_ts__gte=stamps[0].to_pydatetime())
    markers = [(a.start_ts, _value_at(points, a.start_ts)) for a in anomalies]
    markers = [(ts, v) for ts, v in markers if v is not None]
    spans = [(a.start_ts, a.end_ts, a.explanation.get("text") or f"{a.severity} incident") for a in anomalies]
    model = active_models(detector=detector, series_ids=[series_id]).get(series_id)
    return PlotData(points, markers, _band(model, stamps, values), spans)


def incident_plot_data(*, anomalies: list[Anomaly], before: int = 150, after: int = 50, most: int = 2000) -> dict:
    """{incident id: PlotData} for the incidents on a series: `before` points before it, its own points (at
    most `most`), `after` points after it, its peak marked, the incident shaded, and the band that the model
    which raised it (else the series' active one) expects over those points. One query reads every window;
    nothing is written. Incidents on table records get no plot."""
    from ingestion.bulk import points_read_windows, timestamps_from_us

    on_series = [a for a in anomalies if a.series_id is not None and a.detector_id is not None]
    if not on_series:
        return {}
    windows = points_read_windows(
        series_ids=[a.series_id for a in on_series], starts=[a.start_ts for a in on_series],
        ends=[max(a.start_ts, a.end_ts) for a in on_series], before=before, after=after, most=most,
    )  # fmt: skip
    models = _plot_models(on_series)
    plots = {}
    for anomaly, (ts_us, values) in zip(on_series, windows, strict=True):
        stamps = timestamps_from_us(ts_us)
        points = list(zip(stamps.to_pydatetime(), values.tolist(), strict=True))
        peak = _value_at(points, anomaly.peak_ts)
        label = anomaly.explanation.get("text") or f"{anomaly.severity} incident"
        plots[anomaly.pk] = PlotData(
            points=points, markers=[(anomaly.peak_ts, peak)] if peak is not None else [],
            band=_band(models.get(anomaly.pk), stamps, values), spans=[(anomaly.start_ts, anomaly.end_ts, label)],
        )  # fmt: skip
    return plots


def _plot_models(anomalies: list[Anomaly]) -> dict:
    """{incident id: the model version to draw its band with}: its own, or its series' active one."""
    from detectors.services.modelling import active_models

    models = {a.pk: a.model_version for a in anomalies if a.model_version_id is not None}
    orphans = [a for a in anomalies if a.model_version_id is None]
    for detector_id in {a.detector_id for a in orphans}:
        mine = [a for a in orphans if a.detector_id == detector_id]
        active = active_models(detector=mine[0].detector, series_ids=[a.series_id for a in mine])
        models.update({a.pk: active[a.series_id] for a in mine if a.series_id in active})
    return models


def _band(model, stamps, values) -> list:
    from detectors.services.modelling import algorithm_load

    if model is None or not len(values) or len((model.state or {}).get("metrics") or ()) > 1:
        return []  # a model of several metrics expects them all; the plot shows the lead's points alone
    result = algorithm_load(version=model).score_details(values, stamps)
    if result.lower is None or result.upper is None:
        return []
    return list(zip(stamps.to_pydatetime(), result.lower.tolist(), result.upper.tolist(), strict=True))


def _value_at(points: list[tuple[datetime, float]], ts: datetime) -> float | None:
    """The plotted value at an incident's alarm (its marker), if that point is in the plot."""
    return next((v for t, v in points if t == ts), None)
