"""Schedules shared by detectors and forecast configs: the shortest interval and the next run."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from common.exceptions import ApplicationError


def schedule_check(interval: timedelta | None) -> None:
    shortest = settings.SCHEDULE_MIN_SECONDS
    if interval is not None and interval.total_seconds() < shortest:
        raise ApplicationError(
            f"schedule_interval must be at least {shortest} seconds (SCHEDULE_MIN_SECONDS).",
            extra={"field": "schedule_interval"},
        )


def next_run_at(*, enabled: bool, interval: timedelta | None, now: datetime) -> datetime | None:
    return now + interval if enabled and interval is not None else None
