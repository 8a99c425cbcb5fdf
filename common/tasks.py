"""Celery pieces shared by detection and forecasting runs."""

from __future__ import annotations

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

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
