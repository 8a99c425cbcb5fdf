"""Forecast runs: create, fan out per chunk of series across workers, count progress, finish.

The same shape as detection runs (``detectors.services.runs``): a chunk's counts are added to its run at
most once (the run records which chunks are done), and its forecasts are unique per origin, so a chunk
redelivered after a worker crash changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from common.exceptions import ApplicationError
from common.tasks import send_chunk
from forecasting.models import ForecastConfig, ForecastRun, RunStatus, RunTrigger
from forecasting.selectors import config_series_ids
from forecasting.services.configs import model_version_current
from forecasting.services.forecasts import chunk_forecast

logger = logging.getLogger(__name__)

CHUNK_SIZE = 50  # series per task
MAX_ERRORS_KEPT = 20
MAX_BACKFILL_ORIGINS = 500


def backfill_origins(*, start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """Origins start, start + every, ... before end (at most MAX_BACKFILL_ORIGINS)."""
    if start >= end:
        raise ApplicationError("The window's start must be before its end.", extra={"field": "start"})
    if every.total_seconds() < 60:
        raise ApplicationError("every must be at least one minute.", extra={"field": "every"})
    count = int((end - start) / every) + 1
    if count > MAX_BACKFILL_ORIGINS:
        raise ApplicationError(
            f"{count} origins; at most {MAX_BACKFILL_ORIGINS} per backfill: shorten the window or raise every.",
            extra={"field": "every"},
        )
    return [start + i * every for i in range(count) if start + i * every < end]


def run_create(
    *, config: ForecastConfig, trigger: str, origins: list[datetime] | None = None, user=None
) -> ForecastRun:
    return ForecastRun.objects.create(
        config=config,
        trigger=trigger,
        origins=list(origins or []),
        model_version=model_version_current(config=config),
        created_by=user,
    )


def run_plan(*, run: ForecastRun) -> list[list[int]]:
    """Split the run into chunks of series and record the totals; mark it running."""
    ids = config_series_ids(config=run.config)
    chunks = [ids[i : i + CHUNK_SIZE] for i in range(0, len(ids), CHUNK_SIZE)]
    run.series_total, run.chunks_total = len(ids), len(chunks)
    run.status = RunStatus.RUNNING if chunks else RunStatus.SUCCEEDED
    run.started_at = timezone.now()
    run.finished_at = None if chunks else run.started_at
    run.save(update_fields=["series_total", "chunks_total", "status", "started_at", "finished_at", "updated_at"])
    return chunks


def run_enqueue(*, run: ForecastRun, queue: str | None = None) -> ForecastRun:
    """Plan the run and send one task per chunk once the transaction commits."""
    from forecasting import tasks

    for index, chunk in enumerate(run_plan(run=run)):
        transaction.on_commit(
            lambda args=(run.pk, index, chunk): send_chunk(tasks.forecast_chunk, args, queue, fail_run=run_fail)
        )
    return run


def run_execute(*, run: ForecastRun, progress=None) -> ForecastRun:
    """Run every chunk in this process (CLI, tests); the same code as the workers."""
    for index, chunk in enumerate(run_plan(run=run)):
        run_chunk(run_id=run.pk, index=index, series_ids=chunk)
        if progress is not None:
            progress(len(chunk))
    run.refresh_from_db()
    return run


def run_chunk(*, run_id: int, index: int, series_ids: list[int]) -> None:
    run = ForecastRun.objects.select_related("config", "config__dataset", "model_version").get(pk=run_id)
    if run.status not in (RunStatus.RUNNING, RunStatus.QUEUED):
        return
    outcome = chunk_forecast(
        config=run.config,
        model_version=run.model_version,
        series_ids=series_ids,
        origins=run.origins or None,
        run_id=run.pk,
        now=run.created_at,
    )
    if _count_chunk(run, index, len(series_ids), outcome.stored, outcome.errors):
        run_finish(run_id=run_id)


def _count_chunk(run: ForecastRun, index: int, series: int, stored: int, errors: list[str]) -> bool:
    """Add the chunk's counts once; True when it was the last chunk of the run."""
    text = "\n".join(errors[:MAX_ERRORS_KEPT])
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {ForecastRun._meta.db_table}
            SET chunks_done = chunks_done + 1, series_done = series_done + %s, forecasts_made = forecasts_made + %s,
                done_chunks = array_append(done_chunks, %s),
                error = CASE WHEN %s = '' THEN error ELSE left(error || %s, 10000) END, updated_at = now()
            WHERE id = %s AND NOT (%s = ANY(done_chunks))
            RETURNING chunks_done, chunks_total
            """,
            [series, stored, index, text, text + "\n", run.pk, index],
        )
        row = cursor.fetchone()
    return row is not None and row[0] >= row[1]


def run_finish(*, run_id: int) -> None:
    ForecastRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        status=RunStatus.SUCCEEDED, finished_at=timezone.now(), updated_at=timezone.now()
    )


def run_fail(*, run_id: int, error: str) -> None:
    ForecastRun.objects.filter(pk=run_id).exclude(status=RunStatus.SUCCEEDED).update(
        status=RunStatus.FAILED, error=error[:10000], finished_at=timezone.now(), updated_at=timezone.now()
    )


def configs_dispatch_due(*, now: datetime | None = None) -> list[int]:
    """Claim every enabled config whose next run is due and start a scheduled run for it.

    The claim is a conditional update on next_run_at, so two beat ticks never start the same run twice.
    """
    now = now or timezone.now()
    started = []
    due = ForecastConfig.objects.filter(enabled=True, schedule_interval__isnull=False, next_run_at__lte=now)
    for config in due.select_related("dataset"):
        claimed = ForecastConfig.objects.filter(pk=config.pk, next_run_at=config.next_run_at).update(
            next_run_at=now + config.schedule_interval
        )
        if claimed:
            with transaction.atomic():
                run = run_create(config=config, trigger=RunTrigger.SCHEDULE)
                run_enqueue(run=run)
            started.append(run.pk)
    return started
