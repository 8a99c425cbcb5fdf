"""Scoring a chunk of series: one query in, numpy through the algorithm, incidents out in bulk.

Per series the points read are: the history before the scoring start (the model's declared context, at
least `training_points`, and back to the alarm of an incident still open), then the points to score. The
history fits a model when the series has none (or when a backfill must not use a model fitted on later
data) and always warms up the score calibration, so a point gets the score a backfill or `score_csv`
gives it with the same model. Incidents stored by earlier runs are masked in that history as they were
when found, and an open one is followed on: it is extended, or it closes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from detectors.algorithms.forecast_band import ForecastBand
from detectors.algorithms.incidents import Prior, Progress, Reference, describe
from detectors.algorithms.postprocess import Event, detect, sensitivity_threshold
from detectors.models import (
    SEVERITY_RANK,
    Anomaly,
    Detector,
    IncidentStatus,
    ModelVersion,
    ReviewStatus,
    SeriesCursor,
)
from detectors.selectors import Entity, entities_of, entity_points_read
from detectors.services.incidents import (
    incidents_insert,
    incidents_overlapping,
    incidents_supersede,
    open_incidents,
)
from detectors.services.labelled import entity_spans, signature_of, triage_held_back, without_spans
from detectors.services.modelling import (
    MIN_TRAINING_POINTS,
    FittedModel,
    active_models,
    algorithm_fit,
    algorithm_load,
    model_is_current,
    model_metrics,
    model_versions_store,
)
from forecasting.selectors import forecast_band_at
from ingestion.bulk import timestamps_from_us, us_from_utc, utc_from_us
from ingestion.models import Series

logger = logging.getLogger(__name__)

# Without enough history before the window, this share of the points read trains the model.
TRAINING_FRACTION = 0.15
ONE_US = timedelta(microseconds=1)


@dataclass
class SeriesScore:
    series_id: int
    points_scored: int = 0
    events: list[Event] = field(default_factory=list)
    model: ModelVersion | None = None
    new_model: FittedModel | None = None  # fitted in this chunk, stored with the others in one go
    last_ts: datetime | None = None
    resumed: Anomaly | None = None  # the stored open incident this run followed on
    error: str = ""


@dataclass
class ChunkScore:
    series: list[SeriesScore]
    created_ids: list[int] = field(default_factory=list)  # incidents stored by this chunk
    resolved_ids: list[int] = field(default_factory=list)  # incidents that closed in this chunk
    escalated_ids: list[int] = field(default_factory=list)  # open incidents whose severity rose in this chunk

    @property
    def points_scored(self) -> int:
        return sum(s.points_scored for s in self.series)

    @property
    def errors(self) -> list[str]:
        return [f"series {s.series_id}: {s.error}" for s in self.series if s.error]

    @property
    def incidents_found(self) -> int:
        return sum(1 for s in self.series for e in s.events if not e.resumed)


def chunk_score(
    *,
    detector: Detector,
    series_ids: list[int],
    start: datetime | None = None,
    end: datetime | None = None,
    refit: bool = False,
    persist: bool = True,
    run_id: int | None = None,
    from_cursors: bool = False,
) -> ChunkScore:
    """Score the series' points in [start, end), or after each series' cursor (from_cursors).

    A start of None without cursors means from each series' first point. With joint metrics the series
    are scored as their entities (a chunk holds whole ones): the lead's model, cursor and incidents.

    refit: fit a fresh model on the history before `start` instead of the active one (backfills and
    backtests must not use a model that has seen the future). persist: store models, incidents and
    cursors (False for backtests).
    """
    entities = entities_of(detector=detector, series_ids=series_ids)
    leads = [entity.lead for entity in entities]
    starts = _cursor_starts(detector, entities) if from_cursors else [start] * len(entities)
    models = active_models(detector=detector, series_ids=leads)
    current = {e.lead: _is_current(detector, e, models.get(e.lead)) for e in entities}
    usable = {lead: algorithm_load(version=models[lead]) for lead, ok in current.items() if ok and not refit}
    follow = persist and not refit  # backfills and backtests judge their window afresh
    open_now = open_incidents(detector=detector, series_ids=leads) if follow else {}
    read_from = [_earliest(s, open_now.get(lead)) for lead, s in zip(leads, starts, strict=True)]
    context = max([detector.training_points, *(f.context_size for f in usable.values())])
    points = entity_points_read(entities=entities, starts=read_from, end=end, history=context)
    earlier = incidents_overlapping(detector=detector, points=points) if follow else {}
    spans = entity_spans(detector=detector, entities=entities)
    results = []
    for entity, score_from in zip(entities, starts, strict=True):
        lead = entity.lead
        ts_us, values = points[lead]
        try:
            result = _score_series(
                detector, entity, ts_us, values, score_from, models.get(lead), usable.get(lead),
                earlier.get(lead, []), spans.get(lead, []),
            )  # fmt: skip
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            logger.warning("series scoring failed", extra={"detector": detector.pk, "series": lead})
            result = SeriesScore(series_id=lead, error=f"{type(exc).__name__}: {exc}")
        # A new model is stored when the series has none or it is stale (algorithm, params or members
        # changed); a refit for a backfill over a series that has a current model stays temporary.
        keep_new = persist and not current[lead]
        if result.new_model is not None and not keep_new:
            result.new_model = None
        results.append(result)
    outcome = ChunkScore(series=results)
    if persist:
        stored = model_versions_store(detector=detector, models=[r.new_model for r in results if r.new_model])
        for result in results:
            result.model = stored.get(result.series_id, result.model)
        # A stale model's open incident is not followed by the new one: closed as superseded (before the new
        # model's incidents are stored, so one of them may be the series' open incident).
        refitted = [sid for e, r in zip(entities, results, strict=True) if r.new_model for sid in e.members]
        with transaction.atomic():
            superseded = incidents_supersede(detector=detector, series_ids=refitted) if refitted else []
            outcome.created_ids, outcome.resolved_ids, outcome.escalated_ids = _store_incidents(
                detector, results, run_id
            )
            outcome.resolved_ids = superseded + outcome.resolved_ids
            _advance_cursors(detector, results, dict(zip(leads, starts, strict=True)))
    return outcome


def _is_current(detector: Detector, entity: Entity, model: ModelVersion | None) -> bool:
    metrics = model_metrics(detector=detector, entity=entity)
    return model is not None and model_is_current(version=model, detector=detector, metrics=metrics)


def _earliest(start: datetime | None, incident: Anomaly | None) -> datetime | None:
    """Read from the alarm of a still open incident, so its whole extent is at hand."""
    if incident is None or start is None:
        return start
    return min(start, incident.start_ts)


def _score_series(detector, entity, ts_us, values, score_from, model, fitted, incidents, spans) -> SeriesScore:
    """Score one entity: a series' values (n,), or the aligned metrics of a joint entity (n, d)."""
    outcome = SeriesScore(series_id=entity.lead)
    if not len(ts_us):
        return outcome
    n_history = int(np.searchsorted(ts_us, us_from_utc(score_from))) if score_from is not None else 0
    first_scored = n_history
    threshold = model.threshold if fitted is not None else sensitivity_threshold(detector.sensitivity)
    trained_rows = 0
    if fitted is None:
        train = n_history if n_history >= MIN_TRAINING_POINTS else _training_rows(len(ts_us))
        if train > len(ts_us):
            return outcome  # too few points to learn from yet; the cursor waits
        learn_from = without_spans(ts_us[:train], values[:train], spans)  # labelled anomalies are not normal
        fitted = algorithm_fit(detector=detector, values=learn_from, timestamps=timestamps_from_us(ts_us[:train]))
        metrics = model_metrics(detector=detector, entity=entity)
        outcome.new_model = FittedModel(entity.lead, fitted, ts_us[:train], train, metrics)
        first_scored = max(first_scored, train)
        trained_rows = train
        incidents = []  # a fresh model judges its window afresh
    outcome.model = model
    outcome.last_ts = utc_from_us(ts_us[-1])
    if first_scored >= len(ts_us):
        return outcome
    if score_from is not None:  # incidents from the scoring start on (late points) are found again
        incidents = [i for i in incidents if i.start_ts < score_from]
    priors = [_prior(incident, ts_us) for incident in incidents]
    band = None if entity.joint else _forecast_band(detector, entity.lead, ts_us, fitted)
    scorer = band if band is not None else fitted
    result = detect(
        scorer, values, timestamps_from_us(ts_us), threshold=threshold, alarm_from=first_scored,
        close_after=detector.close_after, adapt_after=detector.adapt_after, mask_after=detector.mask_after,
        priors=[p for p in priors if p is not None], trained_rows=trained_rows,
        columns=list(entity.metrics) if entity.joint else None,
    )  # fmt: skip
    outcome.events = result.events
    for event in outcome.events:
        if band is not None:
            _explain_forecast(detector, band, event)
        if entity.joint:
            _explain_members(entity, event)
    outcome.resumed = next((i for i in incidents if i.status == IncidentStatus.OPEN), None)
    outcome.points_scored = (len(ts_us) - first_scored) * len(entity.members)  # one point per metric and row
    return outcome


def _explain_members(entity: Entity, event: Event) -> None:
    """A joint incident names the series that took part, and its sentence the metrics that departed and how
    far (peak, in scales of their own band), or all of them when only their relation broke."""
    explanation = event.explanation
    explanation["series"] = [{"id": sid, "metric": m} for sid, m in zip(entity.members, entity.metrics, strict=True)]
    departed = {name: how for name, how in (explanation.get("columns") or {}).items() if name}
    if departed:
        named = ", ".join(f"{name} ({how['peak_sigma']:+.1f}σ)" for name, how in departed.items())
        tail = f"Departed: {named}."
    else:
        tail = f"Metrics: {', '.join(entity.metrics)}."
    explanation["text"] = f"{explanation.get('text', '')} {tail}".strip()


def _forecast_band(detector: Detector, series_id: int, ts_us: np.ndarray, fitted) -> ForecastBand | None:
    """The detector's forecast band over the points read (one query), or None when it has none."""
    if detector.forecast_config_id is None:
        return None
    mean, lower, upper = forecast_band_at(
        series_id=series_id, ts_us=ts_us, level=detector.forecast_level, config_id=detector.forecast_config_id
    )
    if not np.isfinite(mean).any():
        return None  # no forecast covers these points: the algorithm's own expectation
    return ForecastBand(fitted, ts_us, mean, lower, upper, level=detector.forecast_level)


def _explain_forecast(detector: Detector, band: ForecastBand, event: Event) -> None:
    """An incident whose peak a forecast covers shows the forecast's band as what was expected."""
    peak = timestamps_from_us(np.array([us_from_utc(event.peak_ts)]))
    mean, lower, upper = (float(a[0]) for a in band.band_at(peak, 1))
    if not np.isfinite(mean):
        return
    event.expected, event.lower, event.upper = mean, lower, upper
    explanation = event.explanation
    explanation.update(expected=mean, band=[lower, upper], expected_from="forecast",
                       forecast_config=detector.forecast_config_id, forecast_level=detector.forecast_level)  # fmt: skip
    if isinstance(event.value, int | float) and "shape" in explanation:
        text = describe(explanation["shape"], event.value, lower, upper, event.rows, "")
        explanation["text"] = f"{text} The expected range is the forecast's {detector.forecast_level}% interval."


def _row(ts_us: np.ndarray, ts: datetime) -> int:
    return int(np.searchsorted(ts_us, us_from_utc(ts)))


def _prior(incident: Anomaly, ts_us: np.ndarray) -> Prior | None:
    """A stored incident as the algorithm's Prior, its rows numbered within the points read."""
    state = incident.state or {}
    if "reference" not in state:
        return None  # stored before incidents had a reference: nothing to mask it with
    start = _row(ts_us, incident.start_ts)
    if start == 0 and us_from_utc(incident.start_ts) < ts_us[0]:
        step = float(np.median(np.diff(ts_us))) if len(ts_us) > 1 else 1.0
        start = -round((ts_us[0] - us_from_utc(incident.start_ts)) / step)  # before the points read: keep its phase
    reference = Reference.from_state(state["reference"], onset=start)
    if incident.status == IncidentStatus.CLOSED:
        return Prior(
            start, reference, _row(ts_us, incident.closed_ts), end=_row(ts_us, incident.end_ts),
            level_offset=state.get("level_offset"), onset_kept=state.get("onset_kept"),
        )  # fmt: skip
    progress = state["progress"]
    next_row = int(np.searchsorted(ts_us, us_from_utc(incident.last_seen), side="right"))
    best_row = _row(ts_us, utc_from_us(progress["best_us"]))
    progress = Progress(next_row, progress["total"], progress["best"], best_row)
    end = _row(ts_us, incident.end_ts)
    return Prior(start, reference, None, end=end, progress=progress, onset_kept=state.get("onset_kept"))


def _training_rows(n: int) -> int:
    return max(MIN_TRAINING_POINTS, int(TRAINING_FRACTION * n))


def _store_incidents(detector: Detector, results: list[SeriesScore], run_id: int | None) -> tuple[list, list, list]:
    """Insert new incidents and update the followed ones; returns (created, resolved, escalated) ids.

    "Created" also names followed incidents that the triage held back until now and releases as they grow
    (they are raised for the first time).
    """
    new, resolved, released, escalated = [], [], [], []
    for result in results:
        for event in result.events:
            if event.resumed and result.resumed is not None:
                closed, freed, rose = _incident_update(result.resumed, event, result.last_ts, result.model)
                resolved += [result.resumed.pk] if closed else []
                released += [result.resumed.pk] if freed else []
                escalated += [result.resumed.pk] if rose and not closed and not freed else []
            elif not event.resumed:
                new.append(_incident(detector, result, event, run_id))
    _triage(new, results)
    created = incidents_insert(incidents=new)
    resolved += [incident.pk for incident in created if incident.status == IncidentStatus.CLOSED]
    return [incident.pk for incident in created] + released, resolved, escalated


def _triage(new: list[Anomaly], results: list[SeriesScore]) -> None:
    """New incidents that their model version's triage (learnt from labels) rates as likely false alarms are
    stored suppressed: visible, never raised."""
    models = {r.series_id: r.model for r in results if r.model is not None and r.model.triage}
    for series_id, model in models.items():
        mine = [incident for incident in new if incident.series_id == series_id]
        signatures = [signature_of(i) for i in mine]
        held = triage_held_back(triage_state=model.triage, series_id=series_id, signatures=signatures)
        for incident in (i for i, hold in zip(mine, held, strict=True) if hold):
            incident.review_status = ReviewStatus.SUPPRESSED
            incident.explanation = {**incident.explanation, "held_back": _held_back_text(model)}


def _held_back_text(model: ModelVersion) -> str:
    return f"Held back by model v{model.version}: labelled incidents like it were mostly false alarms."


def _incident_fields(event: Event, last_ts: datetime | None) -> dict:
    closed = event.closed_at is not None
    state = {"reference": event.reference.to_state()}
    if event.level_offset is not None:
        state["level_offset"] = event.level_offset
    if event.onset_kept is not None:
        state["onset_kept"] = event.onset_kept
    if not closed:  # the end so far is where its evidence peaked: enough to follow it on
        progress = event.progress
        state["progress"] = {"total": progress.total, "best": progress.best, "best_us": us_from_utc(event.end_ts)}
    return {
        "end_ts": event.end_ts.to_pydatetime(), "peak_ts": event.peak_ts.to_pydatetime(), "value": event.value,
        "expected": event.expected, "lower": event.lower, "upper": event.upper, "score": event.score,
        "severity": event.severity, "explanation": event.explanation,
        "status": IncidentStatus.CLOSED if closed else IncidentStatus.OPEN,
        "closed_ts": event.closed_ts.to_pydatetime() if closed else None,
        "close_reason": event.close_reason or "",
        "last_seen": event.closed_ts.to_pydatetime() if closed else last_ts,
        "state": state,
    }  # fmt: skip


def _incident(detector: Detector, result: SeriesScore, event: Event, run_id: int | None) -> Anomaly:
    return Anomaly(
        detector=detector, series_id=result.series_id, model_version=result.model, run_id=run_id,
        start_ts=event.start_ts.to_pydatetime(), points=event.rows, **_incident_fields(event, result.last_ts),
    )  # fmt: skip


def _incident_update(
    incident: Anomaly, event: Event, last_ts: datetime | None, model: ModelVersion | None
) -> tuple[bool, bool, bool]:
    """Extend or close a stored open incident; returns (it closed, the triage released it, its severity rose).

    An incident the triage held back is judged again as it grows: a spike that turns into a lasting shift
    may no longer look like the false alarms it resembled at its alarm.
    """
    fields = _incident_fields(event, last_ts)
    fields["points"] = event.rows
    fields["score"] = max(event.score, incident.score)
    released = False
    if incident.review_status == ReviewStatus.SUPPRESSED and "held_back" in (incident.explanation or {}):
        grown = Anomaly(**{k: v for k, v in fields.items() if k in SIGNATURE_FIELDS})
        still = model is not None and bool(model.triage) and triage_held_back(
            triage_state=model.triage, series_id=incident.series_id, signatures=[signature_of(grown)]
        )[0]  # fmt: skip
        if still:
            fields["explanation"] = {**fields["explanation"], "held_back": incident.explanation["held_back"]}
        else:
            fields["review_status"], released = ReviewStatus.UNREVIEWED, True
    updated = Anomaly.objects.filter(pk=incident.pk, status=IncidentStatus.OPEN).update(
        **fields, updated_at=timezone.now()
    )
    rose = SEVERITY_RANK.get(fields["severity"], 0) > SEVERITY_RANK.get(incident.severity, 0)
    closed = bool(updated) and fields["status"] == IncidentStatus.CLOSED
    return closed, bool(updated) and released, bool(updated) and rose


SIGNATURE_FIELDS = ("explanation", "value", "expected", "lower", "upper", "points", "score")


def _cursor_starts(detector: Detector, entities: list[Entity]) -> list[datetime | None]:
    """Where each entity's scoring resumes: after its lead's cursor, or from the earliest late point that
    landed behind it; an entity never scored starts after its lead's latest point, so the detector watches
    it from now on (its past is for backfills and backtests). With joint metrics a lead without a cursor of
    its own (a new metric now sorts first) carries on from the cursor of the member that led before."""
    member_ids = [sid for entity in entities for sid in entity.members]
    cursors = {
        sid: (scored_until, rescore_from)
        for sid, scored_until, rescore_from in SeriesCursor.objects.filter(
            detector=detector, series_id__in=member_ids
        ).values_list("series_id", "scored_until", "rescore_from")
    }
    latest = dict(Series.objects.filter(pk__in=[e.lead for e in entities]).values_list("pk", "last_ts"))
    starts = []
    for entity in entities:
        scored_until, rescore_from = cursors.get(entity.lead, (None, None))
        if scored_until is None:  # a new lead carries on from the member that led before, if any
            known = [cursors[sid] for sid in entity.members if sid in cursors]
            scored_until, rescore_from = max(known, default=(None, rescore_from), key=_cursor_key)
        start = _after(scored_until or latest.get(entity.lead))
        starts.append(min(start, rescore_from) if rescore_from is not None and start is not None else start)
    return starts


def _cursor_key(cursor: tuple) -> datetime:
    return cursor[0] or datetime.min.replace(tzinfo=UTC)


def _advance_cursors(detector: Detector, results: list[SeriesScore], starts: dict[int, datetime | None]) -> None:
    """Move each series' cursor to its last scored point; never backwards (a backfill of old data). Late
    points this run scored from are done with; later ones that landed meanwhile still wait."""
    moved = [(r.series_id, r.last_ts, starts.get(r.series_id)) for r in results if r.last_ts is not None]
    if not moved:
        return
    table = SeriesCursor._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (detector_id, series_id, scored_until, pending)
            SELECT %s, s, t, false FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS u(s, t, f)
            ON CONFLICT (detector_id, series_id)
            DO UPDATE SET scored_until = GREATEST(EXCLUDED.scored_until, {table}.scored_until),
                rescore_from = CASE WHEN {table}.rescore_from >= (
                    SELECT f FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(s, f) WHERE v.s = EXCLUDED.series_id
                ) THEN NULL ELSE {table}.rescore_from END
            """,
            [detector.pk, [s for s, _, _ in moved], [t for _, t, _ in moved], [f for _, _, f in moved],
             [s for s, _, _ in moved], [f for _, _, f in moved]],
        )  # fmt: skip


def _after(ts: datetime | None) -> datetime | None:
    """The instant after ts; the last instant Python can hold has none, so it stays (nothing follows it)."""
    if ts is None:
        return None
    return ts + ONE_US if ts.replace(tzinfo=None) < datetime.max else ts
