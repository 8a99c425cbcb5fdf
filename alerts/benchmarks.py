"""``manage.py bench alerts``: incidents to webhooks through real workers, one of which keeps being killed.

1,000 incidents (times `scale`) of 20 detectors, one rule each, the rules spread over 3 webhook channels
pointed at a local receiver that answers 10 % of requests with 503. Incidents arrive at a steady
INCIDENTS_PER_S in batches, stored the way detection runs store them (signal after commit, the production
receivers and tasks). Two worker processes consume the
notify queue; every few seconds one of them is SIGKILLed and a new one started. The benchmark plays beat's
sweep (alerts.tasks.redispatch_due) every ALERTS_SWEEP_SECONDS.

Expected: one message per incident and channel. Delivered: distinct idempotency keys the receiver answered
200; duplicates: 200s beyond the first per key; lost: expected keys never delivered when the run ends.
Latency: from the incident's stored_at (in the body) to the receiver's first 200 for its key.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from alerts import tasks
from alerts.channels.webhook import signature
from alerts.models import AlertRule, Notification, NotificationStatus
from alerts.services.configs import channel_create, rule_save
from detectors.models import Anomaly, Detector, IncidentStatus
from detectors.services.incidents import incidents_insert
from detectors.signals import anomalies_created, send_after_commit
from ingestion.models import Dataset, Series
from teams.models import Team

ROOT = Path(__file__).resolve().parent.parent
INCIDENTS, RULES, CHANNELS, WORKERS = 1000, 20, 3, 2
FAIL_SHARE = 0.10
BATCH, INCIDENTS_PER_S = 4, 4.0
KILL_EVERY_S = 3.0  # after the previous replacement is ready
DRAIN_TIMEOUT_S = 180
SECRET = "bench-secret-0123456789"


def bench_alerts(*, scale: float = 1.0, log=print, worker_env: dict | None = None, **_) -> dict:
    """The figures (see the module docstring); `worker_env` is the workers' environment (default: ours)."""
    n_incidents = max(int(INCIDENTS * scale), RULES)
    receiver = _Receiver().start()
    suffix = uuid.uuid4().hex[:8]
    team = Team.objects.create(name=f"bench alerts {suffix}", slug=f"bench-alerts-{suffix}")
    workers = _Workers(worker_env or dict(os.environ))
    try:
        detectors = _setup(team, receiver.url)
        log(f"alerts benchmark: {n_incidents} incidents at {INCIDENTS_PER_S:g}/s, {RULES} rules over {CHANNELS} "
            "webhook channels, "
            f"{int(FAIL_SHARE * 100)}% of requests answered 503, {WORKERS} workers, one SIGKILLed "
            f"{KILL_EVERY_S:g} s after the last replacement is ready")  # fmt: skip
        workers.start(WORKERS)
        stop = threading.Event()
        threading.Thread(target=_sweep, args=(stop,), daemon=True).start()
        threading.Thread(target=workers.keep_killing, args=(stop,), daemon=True).start()
        started = time.monotonic()
        _store_incidents(detectors, n_incidents)
        expected = n_incidents  # one channel per rule
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while receiver.delivered_count() < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        stop.set()
        time.sleep(2)  # a late copy of something already delivered would still count as a duplicate
        elapsed = time.monotonic() - started
        figures = _figures(receiver, team, expected, workers.kills, elapsed)
    finally:
        workers.stop_all()
        receiver.stop()
        team.delete()
    _report(figures, log)
    return figures


def _setup(team: Team, url: str) -> list[Detector]:
    dataset = Dataset.objects.create(team=team, name="bench alerts")
    series = Series.objects.bulk_create([Series(dataset=dataset, metric=f"m{i}") for i in range(RULES)])
    detectors = Detector.objects.bulk_create(
        [Detector(dataset=dataset, name=f"d{i}", metric=f"m{i}", algorithm="zscore") for i in range(RULES)]
    )
    channels = [
        channel_create(team=team, name=f"hook {c}", kind="webhook", config={"url": f"{url}/hook{c}"},
                       secrets={"secret": SECRET})
        for c in range(CHANNELS)
    ]  # fmt: skip
    for i, detector in enumerate(detectors):
        detector.bench_series = series[i]
        rule_save(rule=AlertRule(team=team, name=f"rule {i}", min_severity="low"), sources={"detectors": [detector]},
                  channels=[channels[i % CHANNELS]])  # fmt: skip
    return detectors


def _store_incidents(detectors: list[Detector], n: int) -> None:
    """Batches of closed incidents, each stored and signalled like a detection run's chunk."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for first in range(0, n, BATCH):
        with transaction.atomic():
            rows = []
            for k in range(first, min(first + BATCH, n)):
                detector = detectors[k % RULES]
                at = start + timedelta(minutes=k)
                rows.append(Anomaly(
                    detector=detector, series=detector.bench_series, start_ts=at, end_ts=at, peak_ts=at, value=20.0,
                    expected=10.0, lower=9.0, upper=11.0, score=0.99, severity="high", status=IncidentStatus.CLOSED,
                    closed_ts=at, close_reason="recovered", explanation={"text": f"m{k % RULES} rose to 20."},
                ))  # fmt: skip
            created = incidents_insert(incidents=rows)
            send_after_commit(anomalies_created, sender=Anomaly, run_id=None, anomaly_ids=[a.pk for a in created])
        time.sleep(BATCH / INCIDENTS_PER_S)


def _sweep(stop: threading.Event) -> None:
    while not stop.wait(settings.ALERTS_SWEEP_SECONDS):
        tasks.redispatch_due.delay()


class _Workers:
    """Worker processes on the notify queue. The killer waits until the replacement it started last is
    ready (a worker takes seconds to start) before the next kill, so one worker is always working."""

    def __init__(self, env: dict) -> None:
        self.env = {**env, "DB_CONN_MAX_AGE": "60", "LOG_LEVEL": "INFO"}  # the "ready." line is logged at INFO
        self.processes: list[tuple[subprocess.Popen, threading.Event]] = []
        self.kills = 0
        self.lock = threading.Lock()

    def _spawn(self) -> tuple[subprocess.Popen, threading.Event]:
        args = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", "notify",
                "-n", f"bench-alerts-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip"]  # fmt: skip
        process = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ready = threading.Event()

        def read() -> None:
            for line in process.stdout:
                if b" ready." in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        return process, ready

    def start(self, count: int) -> None:
        self.processes = [self._spawn() for _ in range(count)]
        if not all(ready.wait(120) for _, ready in self.processes):
            raise RuntimeError("the benchmark's Celery workers did not start")

    def keep_killing(self, stop: threading.Event) -> None:
        victim = 0
        while not stop.wait(KILL_EVERY_S):
            with self.lock:
                process, _ = self.processes[victim]
                process.send_signal(signal.SIGKILL)
                process.wait()
                self.processes[victim] = self._spawn()
                self.kills += 1
            while not stop.is_set() and not self.processes[victim][1].wait(0.5):
                pass
            victim = (victim + 1) % len(self.processes)

    def stop_all(self) -> None:
        with self.lock:
            for process, _ in self.processes:
                process.terminate()
            for process, _ in self.processes:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()


class _Receiver:
    """Answers 10 % of requests 503 (seeded), records the first 200 per key and every duplicate 200."""

    def __init__(self) -> None:
        self.delivered: dict[str, float] = {}  # key -> latency from incident stored to first 200, s
        self.duplicates = 0
        self.requests = self.refused = self.bad_signatures = 0
        self.random = random.Random(7)
        self.lock = threading.Lock()

    def start(self) -> _Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = owner.receive(dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def receive(self, headers: dict, body: bytes) -> int:
        now = time.time()
        with self.lock:
            self.requests += 1
            if headers.get("X-Signature") != signature(SECRET, headers.get("X-Timestamp", ""), body):
                self.bad_signatures += 1
                return 401
            if self.random.random() < FAIL_SHARE:
                self.refused += 1
                return 503
            key = headers["X-Idempotency-Key"]
            if key in self.delivered:
                self.duplicates += 1
            else:
                stored = datetime.fromisoformat(json.loads(body)["incident"]["stored_at"]).timestamp()
                self.delivered[key] = now - stored
            return 200

    def delivered_count(self) -> int:
        with self.lock:
            return len(self.delivered)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _figures(receiver: _Receiver, team: Team, expected: int, kills: int, elapsed: float) -> dict:
    latencies = np.array(list(receiver.delivered.values())) if receiver.delivered else np.array([np.nan])
    notifications = Notification.objects.filter(channel__team=team)
    return {
        "expected": expected, "delivered": len(receiver.delivered), "duplicates": receiver.duplicates,
        "lost": expected - len(receiver.delivered),
        "p50_s": round(float(np.percentile(latencies, 50)), 3), "p95_s": round(float(np.percentile(latencies, 95)), 3),
        "max_s": round(float(np.max(latencies)), 3), "requests": receiver.requests, "refused_503": receiver.refused,
        "bad_signatures": receiver.bad_signatures, "workers_killed": kills, "seconds": round(elapsed, 1),
        "notifications_marked_sent": notifications.filter(status=NotificationStatus.SENT).count(),
        "notifications": notifications.count(),
    }  # fmt: skip


def _report(f: dict, log) -> None:
    log(f"  expected {f['expected']}, delivered {f['delivered']}, duplicates {f['duplicates']}, lost {f['lost']}"
        "  (targets: 0 duplicates, 0 lost)")  # fmt: skip
    log(f"  incident stored -> delivered: p50 {f['p50_s']:.2f} s, p95 {f['p95_s']:.2f} s (target <= 5), "
        f"max {f['max_s']:.2f} s")  # fmt: skip
    log(f"  {f['requests']} requests, {f['refused_503']} answered 503, {f['bad_signatures']} bad signatures; "
        f"{f['workers_killed']} workers killed in {f['seconds']} s (one every "
        f"{f['seconds'] / max(f['workers_killed'], 1):.1f} s); {f['notifications_marked_sent']} of "
        f"{f['notifications']} notifications marked sent")  # fmt: skip
