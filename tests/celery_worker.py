"""A real Celery worker process for tests of the asynchronous path (pytest plugin, see conftest.py).

Tests that use the `celery_worker` fixture must be `@pytest.mark.django_db(transaction=True)`: the worker
is another process, connected to the test database, and sees only committed rows. It consumes every queue
of the broker in CELERY_BROKER_URL; the queues are purged when it starts, so nothing left over from an
earlier run reaches it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20


def pytest_configure(config):
    # kombu's SQLAlchemy transport (the broker of last resort) uses a loader SQLAlchemy 2.1 deprecates.
    config.addinivalue_line("filterwarnings", "ignore:The ``noload`` loader strategy:DeprecationWarning")


def database_url(db: dict) -> str:
    """The DATABASE_URL (as config/env.py reads it) of a DATABASES entry."""
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host, port = db.get("HOST") or "", db.get("PORT") or ""
    query = {key: str(value) for key, value in (db.get("OPTIONS") or {}).items()}
    if host.startswith("/"):  # a unix socket directory
        query["host"], host = host, ""
    netloc = (f"{auth}@" if auth else "") + host + (f":{port}" if port else "")
    return f"postgres://{netloc}/{quote(db['NAME'])}" + (f"?{urlencode(query)}" if query else "")


class WorkerProcess:
    """A `celery -A config worker` subprocess whose output is collected for failure messages."""

    def __init__(self, env: dict[str, str], name: str, *, queues: str = "", pool: str = "solo", purge=True) -> None:
        queues = queues or settings.CELERY_WORKER_QUEUES
        args = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", pool, "-Q", queues, "-n", name]
        args += ["--purge"] * purge + ["--without-mingle", "--without-gossip", "--without-heartbeat"]
        if pool == "prefork":
            args += ["--concurrency", "1"]
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.process.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line.rstrip())
            if " ready." in line:
                self.ready.set()

    def output(self, last: int = 40) -> str:
        return "\n".join(self.lines[-last:])

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with code {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Celery worker was not ready within {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()  # warm shutdown: the current task finishes
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a worker connected to the test database (call once it exists)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(settings.DATABASES["default"]),  # the test database by now
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "DB_CONN_MAX_AGE": "0",  # no idle connection keeps the test database from being dropped
        "LOG_LEVEL": "INFO",  # the "ready." line is how we know it listens
        **extra,
    }


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real worker on every queue, connected to the test database; stopped at the end of the session.

    Mail it sends is written as files to `worker.mail_dir` (Django's file backend; the test process's
    outbox is in another process).
    """
    mail_dir = tmp_path_factory.mktemp("worker-mail")
    env = worker_env(EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(mail_dir))
    worker = WorkerProcess(env, name=f"tests-{os.getpid()}@%h")
    worker.mail_dir = mail_dir
    worker.wait_ready(READY_TIMEOUT_S)
    yield worker
    worker.stop()
