"""Detection runs: create, fan out per chunk of series across workers, count progress, finish.

A chunk's counts are added to its run at most once (the run records which chunks are done), so a
chunk redelivered after a worker crash changes nothing; its anomalies are unique per start anyway.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from common.exceptions import ApplicationError
from common.tasks import send_chunk
from detectors import signals
from detectors.models import Anomaly, DetectionRun, Detector, ReviewStatus, RunStatus, RunTrigger, SeriesCursor
from detectors.selectors import Entity, detector_entities, entities_of
from detectors.services.scoring import chunk_score
from detectors.services.tables import TableScore, table_score
from ingestion.bulk import points_read_around, us_from_utc
from ingestion.models import DatasetKind, Series

logger = logging.getLogger(__name__)

CHUNK_SIZE = 50  # series per task
MAX_ERRORS_KEPT = 20


def run_create(
    *, detector: Detector, trigger: str, start: datetime | None = None, end: datetime | None = None, user=None
) -> DetectionRun:
    if start is not None and end is not None and start >= end:
        raise ApplicationError("The window's start must be before its end.", extra={"field": "from"})
    return DetectionRun.objects.create(detector=detector, trigger=trigger, window_start=start, window_end=end,
                                       created_by=user)  # fmt: skip


def run_plan(*, run: DetectionRun, series_ids: list[int] | None = None) -> list[list[int]]:
    """Split the run into chunks of series and record the totals; mark it running.

    A table dataset's run is one chunk without series: its records are scored together. With joint
    metrics a chunk holds whole entities (`series_ids` names any of their members) and the totals count
    every member series.
    """
    if run.detector.dataset.kind == DatasetKind.TABLE:
        total, chunks = 0, [[]]
    else:
        chunks = entity_chunks(detector_entities(detector=run.detector, among=series_ids))
        total = sum(len(chunk) for chunk in chunks)
    run.series_total, run.chunks_total = total, len(chunks)
    run.status = RunStatus.RUNNING if chunks else RunStatus.SUCCEEDED
    run.started_at = timezone.now()
    run.finished_at = None if chunks else run.started_at
    run.save(update_fields=["series_total", "chunks_total", "status", "started_at", "finished_at", "updated_at"])
    return chunks


def entity_chunks(entities: list[Entity], size: int = CHUNK_SIZE) -> list[list[int]]:
    """Member ids in chunks of about `size` series; an entity is never split (a larger one is a chunk alone)."""
    chunks: list[list[int]] = []
    for entity in entities:
        if not chunks or len(chunks[-1]) + len(entity.members) > size:
            chunks.append([])
        chunks[-1].extend(entity.members)
    return chunks


def run_enqueue(*, run: DetectionRun, series_ids: list[int] | None = None, queue: str | None = None) -> DetectionRun:
    """Plan the run and send one task per chunk once the transaction commits (to `queue` if given)."""
    from detectors import tasks

    for index, chunk in enumerate(run_plan(run=run, series_ids=series_ids)):
        transaction.on_commit(
            lambda args=(run.pk, index, chunk): send_chunk(tasks.score_chunk, args, queue, fail_run=run_fail)
        )
    return run


def run_execute(*, run: DetectionRun, series_ids: list[int] | None = None, progress=None) -> DetectionRun:
    """Run every chunk in this process (CLI backfills, realtime batches); same code as the workers."""
    for index, chunk in enumerate(run_plan(run=run, series_ids=series_ids)):
        run_chunk(run_id=run.pk, index=index, series_ids=chunk)
        if progress is not None:
            progress(len(chunk))
    run.refresh_from_db()
    return run


def run_chunk(*, run_id: int, index: int, series_ids: list[int]) -> None:
    run = DetectionRun.objects.select_related("detector", "detector__dataset").get(pk=run_id)
    if run.status not in (RunStatus.RUNNING, RunStatus.QUEUED) or index in run.done_chunks:
        return  # a chunk redelivered after it was counted
    # What the chunk stores and its counts commit together: a worker killed in between leaves neither, so
    # the redelivered chunk counts the anomalies it stores (else they would exist but be counted by none).
    with transaction.atomic():
        done = _chunk_score_and_count(run, index, series_ids)
    if done:
        run_finish(run_id=run_id)


def _chunk_score_and_count(run: DetectionRun, index: int, series_ids: list[int]) -> bool:
    run_id = run.pk
    window = run.trigger in (RunTrigger.BACKFILL, RunTrigger.BACKTEST)  # else: new points since the cursors
    persist = run.trigger != RunTrigger.BACKTEST
    if run.detector.dataset.kind == DatasetKind.TABLE:
        outcome = table_score(detector=run.detector, start=run.window_start, end=run.window_end,
                              from_cursor=not window, persist=persist, run_id=run.pk)  # fmt: skip
    else:
        outcome = chunk_score(
            detector=run.detector, series_ids=series_ids, start=run.window_start, end=run.window_end,
            refit=window, persist=persist, run_id=run.pk, from_cursors=not window,
        )  # fmt: skip
    found = _backtest_events(outcome) if run.trigger == RunTrigger.BACKTEST else []
    done = _count_chunk(run, index, len(series_ids), outcome, found)
    if persist:
        signals.send_after_commit(signals.anomalies_created, sender=DetectionRun, run_id=run_id,
                                  anomaly_ids=outcome.created_ids)  # fmt: skip
        signals.send_after_commit(signals.incident_resolved, sender=DetectionRun, run_id=run_id,
                                  anomaly_ids=outcome.resolved_ids)  # fmt: skip
        signals.send_after_commit(signals.incident_escalated, sender=DetectionRun, run_id=run_id,
                                  anomaly_ids=outcome.escalated_ids)  # fmt: skip
    return done


def _backtest_events(outcome) -> list[dict]:
    """A backtest stores nothing: its events travel in the run's result instead."""
    if isinstance(outcome, TableScore):
        return [
            {"record": a.record_id, "start_ts": a.start_ts.isoformat(), "end_ts": a.end_ts.isoformat(),
             "score": a.score, "severity": a.severity, "explanation": a.explanation}
            for a in outcome.anomalies_created
        ]  # fmt: skip
    return [
        {"series": s.series_id, "start_ts": e.start_ts.isoformat(), "end_ts": e.end_ts.isoformat(),
         "peak_ts": e.peak_ts.isoformat(), "points": e.rows, "value": e.value, "expected": e.expected,
         "lower": e.lower, "upper": e.upper, "score": e.score, "severity": e.severity,
         "text": e.explanation.get("text", "")}
        for s in outcome.series for e in s.events
    ]  # fmt: skip


def _count_chunk(run: DetectionRun, index: int, series: int, outcome, found: list[dict]) -> bool:
    """Add the chunk's counts once; True when it was the last chunk of the run."""
    errors = outcome.errors[:MAX_ERRORS_KEPT]
    anomalies = len(found) or len(outcome.created_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {DetectionRun._meta.db_table}
            SET chunks_done = chunks_done + 1, series_done = series_done + %s,
                points_scored = points_scored + %s, anomalies_found = anomalies_found + %s,
                done_chunks = array_append(done_chunks, %s),
                result = CASE WHEN %s::text = '[]' THEN result
                    ELSE jsonb_set(result, '{{anomalies}}', coalesce(result->'anomalies', '[]') || %s::jsonb) END,
                error = CASE WHEN %s = '' THEN error ELSE left(error || %s, 10000) END, updated_at = now()
            WHERE id = %s AND NOT (%s = ANY(done_chunks))
            RETURNING chunks_done, chunks_total
            """,
            [series, outcome.points_scored, anomalies, index, json.dumps(found), json.dumps(found),
             "\n".join(errors), "\n".join(errors) + "\n", run.pk, index],
        )  # fmt: skip
        row = cursor.fetchone()
    return row is not None and row[0] >= row[1]


def run_finish(*, run_id: int) -> None:
    run = DetectionRun.objects.get(pk=run_id)
    if run.trigger == RunTrigger.BACKTEST:
        run.result["metrics"] = backtest_metrics(run=run)
        DetectionRun.objects.filter(pk=run_id).update(result=run.result)
    DetectionRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        status=RunStatus.SUCCEEDED, finished_at=timezone.now(), updated_at=timezone.now()
    )


def backtest_metrics(*, run: DetectionRun) -> dict:
    """Precision, recall and F1 of a backtest's incidents against the confirmed ones in its window.

    Per incident: a found incident is a hit when it overlaps a confirmed one, and a confirmed one is caught
    when a found one overlaps it. Per row (series only): the points inside found incidents against the
    points inside confirmed ones. The metrics exist only when the window holds a confirmed incident.
    """
    reviewed = Anomaly.objects.filter(detector=run.detector, review_status=ReviewStatus.CONFIRMED)
    if run.window_start is not None:
        reviewed = reviewed.filter(end_ts__gte=run.window_start)
    if run.window_end is not None:
        reviewed = reviewed.filter(start_ts__lt=run.window_end)
    key = "record" if run.detector.dataset.kind == DatasetKind.TABLE else "series"
    truth = list(reviewed.values_list(f"{key}_id", "start_ts", "end_ts"))
    if not truth:
        return {"labels": 0}
    found = [
        (e[key], datetime.fromisoformat(e["start_ts"]), datetime.fromisoformat(e["end_ts"]))
        for e in run.result.get("anomalies", [])
    ]
    overlaps = lambda a, b: a[0] == b[0] and a[1] <= b[2] and b[1] <= a[2]  # noqa: E731
    hits = sum(any(overlaps(f, t) for t in truth) for f in found)
    caught = sum(any(overlaps(t, f) for f in found) for t in truth)
    metrics = {"labels": len(truth), **_prf(hits, len(found), caught, len(truth))}
    if key == "series":
        metrics["rows"] = _row_metrics(run, found, truth)
    return metrics


def _prf(hits: int, found: int, caught: int, truth: int) -> dict:
    precision = hits / found if found else 0.0
    recall = caught / truth if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def _row_metrics(run: DetectionRun, found: list[tuple], truth: list[tuple]) -> dict:
    """Point-wise precision, recall and F1 over the backtest window's points (one packed read)."""
    series_ids = sorted({sid for sid, _, _ in found + truth})
    start = run.window_start or min(t[1] for t in truth + found)
    arrays = points_read_around(series_ids=series_ids, starts=[start] * len(series_ids), end=run.window_end)
    tp = fp = fn = 0
    for sid, (ts_us, _) in arrays.split().items():
        predicted, actual = _inside(ts_us, found, sid), _inside(ts_us, truth, sid)
        tp += int((predicted & actual).sum())
        fp += int((predicted & ~actual).sum())
        fn += int((~predicted & actual).sum())
    return _prf(tp, tp + fp, tp, tp + fn)


def _inside(ts_us: np.ndarray, spans: list[tuple], series_id: int) -> np.ndarray:
    mask = np.zeros(len(ts_us), dtype=bool)
    for sid, lo, hi in spans:
        if sid == series_id:
            mask[np.searchsorted(ts_us, us_from_utc(lo)) : np.searchsorted(ts_us, us_from_utc(hi), side="right")] = True
    return mask


def run_fail(*, run_id: int, error: str) -> None:
    DetectionRun.objects.filter(pk=run_id).exclude(status=RunStatus.SUCCEEDED).update(
        status=RunStatus.FAILED, error=error[:10000], finished_at=timezone.now(), updated_at=timezone.now()
    )


# --- schedules ---------------------------------------------------------------------------


def detectors_dispatch_due(*, now: datetime | None = None) -> list[int]:
    """Claim every enabled detector whose next run is due and start a scheduled run for it.

    The claim is a conditional update on next_run_at, so two beat ticks never start the same run twice.
    """
    now = now or timezone.now()
    started = []
    due = Detector.objects.filter(enabled=True, schedule_interval__isnull=False, next_run_at__lte=now).select_related(
        "dataset"
    )
    for detector in due:
        claimed = Detector.objects.filter(pk=detector.pk, next_run_at=detector.next_run_at).update(
            next_run_at=now + detector.schedule_interval
        )
        if claimed:
            with transaction.atomic():
                run = run_create(detector=detector, trigger=RunTrigger.SCHEDULE)
                run_enqueue(run=run)
            started.append(run.pk)
    return started


# --- realtime --------------------------------------------------------------------------------


def late_points_mark(*, dataset_id: int, series_ranges: dict[int, tuple[datetime, datetime]]) -> int:
    """Points that landed at or behind a detector's cursor: its next run scores again from the earliest.

    One statement for the dataset's detectors of single series, one per detector of joint metrics (a late
    point on any member moves the cursor of its entity's lead); returns how many cursors moved back.
    """
    if not series_ranges:
        return 0
    detectors = list(Detector.objects.filter(dataset_id=dataset_id))
    firsts = {sid: first for sid, (first, _) in series_ranges.items()}
    single = [d.pk for d in detectors if not d.joint_metrics]
    moved = _mark_late(single, firsts) if single else 0
    for detector in (d for d in detectors if d.joint_metrics):
        moved += _mark_late([detector.pk], _by_lead(detector, firsts))
    return moved


def _by_lead(detector: Detector, firsts: dict[int, datetime]) -> dict[int, datetime]:
    """{lead id: the earliest of the times given for any of its entity's members}."""
    entities = detector_entities(detector=detector, among=list(firsts))
    return {e.lead: min(firsts[sid] for sid in e.members if sid in firsts) for e in entities}


def _mark_late(detector_ids: list[int], firsts: dict[int, datetime]) -> int:
    if not firsts:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {SeriesCursor._meta.db_table} c SET rescore_from = LEAST(COALESCE(c.rescore_from, u.first), u.first)
            FROM unnest(%s::bigint[], %s::timestamptz[]) AS u(series_id, first)
            WHERE c.series_id = u.series_id AND c.scored_until >= u.first AND c.detector_id = ANY(%s)
            """,
            [list(firsts), list(firsts.values()), detector_ids],
        )
        return cursor.rowcount


def realtime_mark_pending(*, dataset_id: int, series_ids: list[int]) -> list[int]:
    """Flag the touched series of each realtime detector; returns the detectors that need a task.

    With joint metrics the flag goes on the lead of each touched entity, whichever member got points.
    Several uploads in a row coalesce: a detector whose series are already pending gets no new task.
    """
    detectors = Detector.objects.filter(dataset_id=dataset_id, realtime=True, enabled=True)
    to_wake = []
    for detector in detectors:
        leads = [entity.lead for entity in detector_entities(detector=detector, among=series_ids)]
        if not leads:
            continue
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {SeriesCursor._meta.db_table} (detector_id, series_id, scored_until, pending)
                SELECT %s, s, NULL, true FROM unnest(%s::bigint[]) AS s
                ON CONFLICT (detector_id, series_id) DO UPDATE SET pending = true
                WHERE NOT {SeriesCursor._meta.db_table}.pending
                RETURNING series_id
                """,
                [detector.pk, leads],
            )
            if cursor.fetchall():
                to_wake.append(detector.pk)
    return to_wake


def realtime_score_pending(*, detector_id: int) -> DetectionRun | None:
    """Score what arrived for the detector's pending series since their cursors.

    The pending flags stay set while scoring, so a crash (even a killed worker) leaves the work for the
    redelivered task or the next wake-up; they are cleared after the run, unless more points came meanwhile.
    """
    claimed = realtime_claim(detector_id=detector_id)
    if not claimed:
        return None
    detector = Detector.objects.select_related("dataset").get(pk=detector_id)
    run = run_execute(run=run_create(detector=detector, trigger=RunTrigger.REALTIME), series_ids=list(claimed))
    if realtime_clear_pending(detector_id=detector_id, claimed=claimed):
        from detectors import tasks

        tasks.wake_realtime([detector_id])  # points landed while this run scored: they wake no task of their own
    return run


def realtime_pending_detectors() -> list[int]:
    """Enabled realtime detectors with series still pending."""
    pending = SeriesCursor.objects.filter(pending=True, detector__realtime=True, detector__enabled=True)
    return list(pending.values_list("detector_id", flat=True).distinct().order_by("detector_id"))


def realtime_claim(*, detector_id: int) -> dict[int, tuple]:
    """The pending series, each with its latest point (the latest of any member of its entity, with joint
    metrics) and late-points mark as they are now."""
    pending = dict(
        SeriesCursor.objects.filter(detector_id=detector_id, pending=True).values_list("series_id", "rescore_from")
    )
    members = _cursor_members(detector_id, list(pending))
    last = dict(Series.objects.filter(pk__in=[m for _, m in members]).values_list("pk", "last_ts"))
    latest: dict[int, datetime] = {}
    for sid, member in members:
        if last.get(member) is not None:
            latest[sid] = max(latest.get(sid, last[member]), last[member])
    return {sid: (latest.get(sid), rescore_from) for sid, rescore_from in pending.items()}


def _cursor_members(detector_id: int, series_ids: list[int]) -> list[tuple[int, int]]:
    """(cursor's series, member) pairs: each series with itself, and a joint entity's lead with every member."""
    pairs = [(sid, sid) for sid in series_ids]
    detector = Detector.objects.get(pk=detector_id)
    if detector.joint_metrics:
        cursors = set(series_ids)
        for entity in entities_of(detector=detector, series_ids=series_ids):
            if entity.lead in cursors:
                pairs += [(entity.lead, member) for member in entity.members[1:]]
    return pairs


def realtime_clear_pending(*, detector_id: int, claimed: dict[int, tuple]) -> list[int]:
    """Clear the flags of the claimed series whose entity got no new point and no new late point since the
    claim; returns the series still pending."""
    ids = list(claimed)
    pairs = _cursor_members(detector_id, ids)
    table = SeriesCursor._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} c SET pending = false
            FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) AS u(series_id, last_ts, rescore_from)
            WHERE c.detector_id = %s AND c.series_id = u.series_id AND c.pending
              AND (SELECT max(s.last_ts) FROM unnest(%s::bigint[], %s::bigint[]) AS m(series_id, member)
                   JOIN {Series._meta.db_table} s ON s.id = m.member
                   WHERE m.series_id = u.series_id) IS NOT DISTINCT FROM u.last_ts
              AND (c.rescore_from IS NULL OR c.rescore_from IS NOT DISTINCT FROM u.rescore_from)
            """,
            [ids, [claimed[i][0] for i in ids], [claimed[i][1] for i in ids], detector_id,
             [sid for sid, _ in pairs], [m for _, m in pairs]],
        )  # fmt: skip
        cursor.execute(
            f"SELECT series_id FROM {table} WHERE detector_id = %s AND series_id = ANY(%s) AND pending",
            [detector_id, ids],
        )
        return [row[0] for row in cursor.fetchall()]
