"""Rate-limit counters live in a cache every web process shares (by default a PostgreSQL table).

Each gunicorn worker is its own process: with a per-process cache, a limit of N failed logins lets
through N per worker. Here separate processes (as the workers are) record failures and a third one
reads them, all with the platform's default settings.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.celery_worker import database_url

ROOT = Path(__file__).resolve().parent.parent
RECORD = """
import django; django.setup()
from django.test import RequestFactory
from common.throttling import auth_failure_record, auth_failures_exceeded
request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.7")
if "{action}" == "record":
    for _ in range({times}):
        auth_failure_record("api", request)
print(auth_failures_exceeded("api", request))
"""


def _in_another_process(action: str, times: int = 0) -> str:
    keep = {k: v for k, v in os.environ.items() if k not in {"CACHE_URL", "DJANGO_SETTINGS_MODULE"}}
    env = {**keep, "DJANGO_SETTINGS_MODULE": "config.settings.base", "SECRET_KEY": "x" * 50,
           "LOCAL_ENV_FILE": os.devnull, "DATABASE_URL": database_url(settings.DATABASES["default"]),
           "AUTH_FAILURE_LIMIT": "5"}  # fmt: skip
    args = [sys.executable, "-c", RECORD.format(action=action, times=times)]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.django_db(transaction=True)
def test_it_counts_failures_across_processes():
    subprocess.run(
        [sys.executable, "manage.py", "createcachetable"], cwd=ROOT, check=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "SECRET_KEY": "x" * 50,
             "CACHE_URL": "db", "DATABASE_URL": database_url(settings.DATABASES["default"])},
    )  # fmt: skip

    assert _in_another_process("record", times=3) == "False"
    assert _in_another_process("record", times=2) == "True"
    assert _in_another_process("read") == "True"
