"""`manage.py bench alerts` at a small scale: its workers are really killed, and nothing is lost."""

from __future__ import annotations

import pytest

from alerts.benchmarks import bench_alerts
from tests.celery_worker import worker_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_it_delivers_every_message_while_killing_workers():
    lines = []
    figures = bench_alerts(scale=0.04, log=lines.append, worker_env=worker_env())
    assert {"expected", "delivered", "duplicates", "lost", "p95_s"} <= set(figures)
    assert figures["expected"] == 40 and figures["delivered"] == 40 and figures["lost"] == 0
    assert figures["notifications_marked_sent"] == 40 and figures["bad_signatures"] == 0
    assert figures["refused_503"] > 0 and figures["requests"] == 40 + figures["refused_503"] + figures["duplicates"]
    assert figures["workers_killed"] >= 1
    assert lines[1].startswith("  expected 40, delivered 40")
