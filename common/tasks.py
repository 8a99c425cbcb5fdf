"""Celery pieces shared by detection and forecasting runs."""

from __future__ import annotations

import logging

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerUnreachable

logger = logging.getLogger(__name__)

# Errors worth retrying: the database or the broker was briefly away.
TRANSIENT = (OperationalError, InterfaceError, ConnectionError)


class ChunkTask(Task):
    """A chunk that fails for good (retries spent, a bug, out of time) fails its run, visibly.

    Subclasses set `fail_run(run_id=, error=)`, their app's service.
    """

    fail_run = None

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        run_id, index = args[0], args[1]
        reason = "ran out of time" if isinstance(exc, SoftTimeLimitExceeded) else f"{type(exc).__name__}: {exc}"
        self.fail_run(run_id=run_id, error=f"chunk {index} failed: {reason}")


def send_or_defer(task, args: tuple, **options) -> bool:
    """Send a task now; with the broker unreachable, log it and return False instead of raising.

    For sends whose work is already recorded in PostgreSQL (a queued batch, a pending series): a periodic
    sweep sends them again once the broker is back, so the request that caused them still succeeds.
    """
    try:
        task.apply_async(args, **options)
    except BrokerUnreachable as exc:
        logger.warning("broker unreachable; the sweep will send it", extra={"task": task.name, "error": str(exc)})
        return False
    return True


def send_chunk(task, args: tuple, queue: str | None, *, fail_run) -> None:
    """Send a run's chunk (args start with the run id). With the broker away the run fails visibly and the
    caller is told to retry: a 503, not a 500 and a run left running."""
    from common.exceptions import ApplicationError

    try:
        task.apply_async(args, queue=queue)
    except (BrokerUnreachable, ConnectionError) as exc:
        fail_run(run_id=args[0], error=f"the broker is unavailable: {exc}")
        raise ApplicationError(
            "The task broker is unavailable; the run was not started (it is marked failed). Retry shortly.",
            status=503,
        ) from exc
