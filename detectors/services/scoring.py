"""Scoring a chunk of series: one query in, numpy through the algorithm, anomalies out in bulk.

Per series the points read are: its latest `training_points` points before the scoring start (the
history), then the points to score. The history fits a model when the series has none (or when a
backfill must not use a model fitted on later data) and always warms up the score calibration, so the
first scored point is judged against the series' own past, never against its future.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db import connection, transaction

from detectors.algorithms.postprocess import Event, detect
from detectors.models import Anomaly, Detector, ModelVersion, SeriesCursor
from detectors.services.modelling import (
    MIN_TRAINING_POINTS,
    FittedModel,
    active_models,
    algorithm_fit,
    algorithm_load,
    model_is_current,
    model_versions_store,
)
from ingestion.bulk import points_read_around, timestamps_from_us, utc_from_us
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
    error: str = ""


@dataclass
class ChunkScore:
    series: list[SeriesScore]
    anomalies_created: list[Anomaly] = field(default_factory=list)

    @property
    def points_scored(self) -> int:
        return sum(s.points_scored for s in self.series)

    @property
    def errors(self) -> list[str]:
        return [f"series {s.series_id}: {s.error}" for s in self.series if s.error]


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

    A start of None without cursors means from each series' first point.

    refit: fit a fresh model on the history before `start` instead of the active one (backfills and
    backtests must not use a model that has seen the future). persist: store models, anomalies and
    cursors (False for backtests).
    """
    starts = _cursor_starts(detector, series_ids) if from_cursors else [start] * len(series_ids)
    models = active_models(detector=detector, series_ids=series_ids)
    arrays = points_read_around(series_ids=series_ids, starts=starts, end=end, history=detector.training_points)
    points = arrays.split()
    results = []
    for series_id, score_from in zip(series_ids, starts, strict=True):
        ts_us, values = points.get(series_id, (np.empty(0, np.int64), np.empty(0)))
        model = models.get(series_id)
        usable = model is not None and not refit and model_is_current(version=model, detector=detector)
        # A new model is stored when the series has none or the detector's algorithm changed; a refit
        # for a backfill over a series that has a current model stays temporary.
        keep_new = persist and (model is None or not model_is_current(version=model, detector=detector))
        try:
            result = _score_series(detector, series_id, ts_us, values, score_from, model if usable else None)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            logger.warning("series scoring failed", extra={"detector": detector.pk, "series": series_id})
            result = SeriesScore(series_id=series_id, error=f"{type(exc).__name__}: {exc}")
        if result.new_model is not None and not keep_new:
            result.new_model = None  # a backfill's own model stays temporary
        results.append(result)
    outcome = ChunkScore(series=results)
    if persist:
        stored = model_versions_store(detector=detector, models=[r.new_model for r in results if r.new_model])
        for result in results:
            result.model = stored.get(result.series_id, result.model)
        with transaction.atomic():
            outcome.anomalies_created = _store_anomalies(detector, results, run_id)
            _advance_cursors(detector, results)
    return outcome


def _score_series(detector, series_id, ts_us, values, score_from, model) -> SeriesScore:
    outcome = SeriesScore(series_id=series_id)
    if not len(ts_us):
        return outcome
    n_history = int(np.searchsorted(ts_us, _us(score_from))) if score_from is not None else 0
    first_scored = n_history
    if model is None:
        train = n_history if n_history >= MIN_TRAINING_POINTS else _training_rows(len(ts_us))
        if train > len(ts_us):
            return outcome  # too few points to learn from yet; the cursor waits
        fitted = algorithm_fit(detector=detector, values=values[:train], timestamps=timestamps_from_us(ts_us[:train]))
        outcome.new_model = FittedModel(series_id, fitted, ts_us[:train], train)
        first_scored = max(first_scored, train)
    else:
        fitted = algorithm_load(version=model)
    outcome.model = model
    outcome.last_ts = utc_from_us(ts_us[-1])
    if first_scored >= len(ts_us):
        return outcome
    result = detect(
        fitted, values, timestamps_from_us(ts_us), sensitivity=detector.sensitivity, alarm_from=first_scored
    )
    outcome.events = result.events
    outcome.points_scored = len(ts_us) - first_scored
    return outcome


def _training_rows(n: int) -> int:
    return max(MIN_TRAINING_POINTS, int(TRAINING_FRACTION * n))


def _store_anomalies(detector: Detector, results: list[SeriesScore], run_id: int | None) -> list[Anomaly]:
    """Insert the events as anomalies; one already stored (same series and start) is left alone."""
    candidates = [_anomaly(detector, result, event, run_id) for result in results for event in result.events]
    if not candidates:
        return []
    existing = set(
        Anomaly.objects.filter(
            detector=detector,
            series_id__in={a.series_id for a in candidates},
            start_ts__in={a.start_ts for a in candidates},
        ).values_list("series_id", "start_ts")
    )
    fresh = [a for a in candidates if (a.series_id, a.start_ts) not in existing]
    Anomaly.objects.bulk_create(fresh, ignore_conflicts=True)  # a concurrent rerun may have won the race
    return fresh


def _anomaly(detector: Detector, result: SeriesScore, event: Event, run_id: int | None) -> Anomaly:
    return Anomaly(
        detector=detector,
        series_id=result.series_id,
        model_version=result.model,
        run_id=run_id,
        start_ts=event.start_ts.to_pydatetime(),
        end_ts=event.end_ts.to_pydatetime(),
        peak_ts=event.peak_ts.to_pydatetime(),
        value=event.value,
        expected=event.expected,
        lower=event.lower,
        upper=event.upper,
        score=event.score,
        severity=event.severity,
        explanation=event.explanation,
    )


def _cursor_starts(detector: Detector, series_ids: list[int]) -> list[datetime | None]:
    """Where each series' scoring resumes: after its cursor; a series never scored starts after its
    latest point, so the detector watches it from now on (its past is for backfills and backtests)."""
    cursors = dict(
        SeriesCursor.objects.filter(detector=detector, series_id__in=series_ids).values_list(
            "series_id", "scored_until"
        )
    )
    latest = dict(Series.objects.filter(pk__in=series_ids).values_list("pk", "last_ts"))
    return [_after(cursors.get(sid) or latest.get(sid)) for sid in series_ids]


def _advance_cursors(detector: Detector, results: list[SeriesScore]) -> None:
    """Move each series' cursor to its last scored point; never backwards (a backfill of old data)."""
    moved = [(r.series_id, r.last_ts) for r in results if r.last_ts is not None]
    if not moved:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {SeriesCursor._meta.db_table} (detector_id, series_id, scored_until, pending)
            SELECT %s, s, t, false FROM unnest(%s::bigint[], %s::timestamptz[]) AS u(s, t)
            ON CONFLICT (detector_id, series_id)
            DO UPDATE SET scored_until = GREATEST(EXCLUDED.scored_until,
                                                  {SeriesCursor._meta.db_table}.scored_until)
            """,
            [detector.pk, [s for s, _ in moved], [t for _, t in moved]],
        )


def _after(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts + ONE_US


def _us(ts: datetime) -> int:
    return int(round(ts.timestamp() * 1e6))
