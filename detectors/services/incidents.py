"""Stored incidents: the ones a run must know about, and one INSERT for new ones."""

from __future__ import annotations

from django.db import connection
from django.db.models.functions import Coalesce
from django.utils import timezone

from detectors.models import Anomaly, CloseReason, IncidentKind, IncidentStatus
from ingestion.bulk import utc_from_us


def open_incidents(*, detector, series_ids: list[int]) -> dict[int, Anomaly]:
    """{series id: its open incident} (at most one per detector and series)."""
    found = Anomaly.objects.filter(
        detector=detector, series_id__in=series_ids, status=IncidentStatus.OPEN, kind=IncidentKind.OBSERVED
    )
    return {incident.series_id: incident for incident in found}


def incidents_overlapping(*, detector, points: dict[int, tuple]) -> dict[int, list[Anomaly]]:
    """{series id: incidents overlapping the points read for it}, in one query, oldest first."""
    spans = {sid: (int(ts_us[0]), int(ts_us[-1])) for sid, (ts_us, _) in points.items() if len(ts_us)}
    if not spans:
        return {}
    earliest = utc_from_us(min(lo for lo, _ in spans.values()))
    latest = utc_from_us(max(hi for _, hi in spans.values()))
    candidates = Anomaly.objects.filter(
        detector=detector, kind=IncidentKind.OBSERVED, series_id__in=list(spans), start_ts__lte=latest
    ).exclude(status=IncidentStatus.CLOSED, closed_ts__lt=earliest)
    out: dict[int, list[Anomaly]] = {}
    for incident in candidates.order_by("start_ts"):
        lo, hi = (utc_from_us(us) for us in spans[incident.series_id])
        if incident.start_ts <= hi and (incident.closed_ts is None or incident.closed_ts >= lo):
            out.setdefault(incident.series_id, []).append(incident)
    return out


def incidents_insert(*, incidents: list[Anomaly], batch: int = 500) -> list[Anomaly]:
    """Insert incidents; one already stored (same detector, series or record, and alarm) is left alone.

    One `INSERT ... ON CONFLICT DO NOTHING RETURNING id` per batch: the returned rows are exactly the new
    ones, with their ids set, so the "created" signal names what this call stored and nothing else.
    """
    if not incidents:
        return []
    fields = [f for f in Anomaly._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    created: list[Anomaly] = []
    for lo in range(0, len(incidents), batch):
        part = incidents[lo : lo + batch]
        params = [f.get_db_prep_save(f.pre_save(i, add=True), connection) for i in part for f in fields]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {Anomaly._meta.db_table} ({columns}) VALUES {', '.join([row] * len(part))} "
                f"ON CONFLICT DO NOTHING RETURNING id, start_ts, series_id, record_id",
                params,
            )
            returned = {(start, series, record): pk for pk, start, series, record in cursor.fetchall()}
        for incident in part:
            pk = returned.get((incident.start_ts, incident.series_id, incident.record_id))
            if pk is not None:
                incident.pk = pk
                incident._state.adding = False
                created.append(incident)
    return created


__all__ = ["incidents_insert", "incidents_overlapping", "open_incidents"]


def incidents_supersede(*, detector, series_ids: list[int]) -> list[int]:
    """Close the open incidents of these series at their last judged point, as superseded: a new model version
    judges the series afresh and does not follow an incident found by another. Returns their ids."""
    found = Anomaly.objects.filter(
        detector=detector, series_id__in=series_ids, status=IncidentStatus.OPEN, kind=IncidentKind.OBSERVED
    )
    ids = list(found.values_list("pk", flat=True))
    Anomaly.objects.filter(pk__in=ids).update(
        status=IncidentStatus.CLOSED, close_reason=CloseReason.SUPERSEDED,
        closed_ts=Coalesce("last_seen", "end_ts"), updated_at=timezone.now(),
    )  # fmt: skip
    return ids
