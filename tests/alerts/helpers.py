"""A local HTTP receiver for channel tests, and builders of incidents, channels and rules."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alerts.channels.webhook import signature
from alerts.models import AlertRule
from alerts.services.configs import channel_create, rule_save
from detectors.models import Anomaly, IncidentStatus
from detectors.services.configs import detector_create
from ingestion.models import Series
from tests.detectors.helpers import dataset_with_series, series_frame

SECRET = "0123456789abcdef-secret"


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float  # time.time() when it arrived
    status: int

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    def signature_ok(self, secret: str = SECRET) -> bool:
        return self.headers.get("X-Signature") == signature(secret, self.headers.get("X-Timestamp", ""), self.body)


@dataclass
class Receiver:
    """A threaded HTTP server that records every POST. `respond(path, n)` picks the status of the n-th
    request to a path (200 by default); `hold` makes requests wait until it is set."""

    respond: object = None
    requests: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Receiver:
        owner = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    count = sum(1 for r in owner.requests if r.path == self.path)
                status = owner.respond(self.path, count) if owner.respond else 200
                record = Received(self.path, dict(self.headers), body, time.time(), status)
                with lock:
                    owner.requests.append(record)
                owner.arrived.set()
                if owner.hold is not None:
                    owner.hold.wait(60)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


def watched_detector(team, name="cpu watch"):
    """A detector over one hourly series "cpu" (no run: incidents are made by hand)."""
    dataset = dataset_with_series(team, [series_frame(n=200)], name=f"{name} data")
    return detector_create(dataset=dataset, name=name, algorithm="zscore")


def incident(detector, *, severity="high", score=0.9, status=IncidentStatus.OPEN, start=None, value=20.0,
             expected=10.0) -> Anomaly:  # fmt: skip
    # The first series while it has no open incident, else a new one (one open incident per series).
    series = Series.objects.filter(dataset_id=detector.dataset_id).exclude(anomalies__status="open").first()
    if series is None or status == IncidentStatus.OPEN and series.anomalies.filter(status="open").exists():
        n = Series.objects.filter(dataset_id=detector.dataset_id).count()
        series = Series.objects.create(dataset_id=detector.dataset_id, metric="cpu", labels={"host": f"h{n}"})
    start = start or datetime(2024, 1, 5, tzinfo=UTC) + timedelta(hours=Anomaly.objects.count())
    return Anomaly.objects.create(
        detector=detector, series=series, start_ts=start, end_ts=start, peak_ts=start, value=value,
        expected=expected, lower=expected - 1, upper=expected + 1, score=score, severity=severity, status=status,
        explanation={"text": f"cpu rose to {value} where about {expected} was expected."},
    )  # fmt: skip


def webhook(team, url: str, name="hook"):
    return channel_create(team=team, name=name, kind="webhook", config={"url": url}, secrets={"secret": SECRET})


def rule(team, channels, *, detectors=(), datasets=(), forecast_configs=(), name="rule", **fields) -> AlertRule:
    fields.setdefault("min_severity", "medium")
    return rule_save(
        rule=AlertRule(team=team, name=name, **fields),
        sources={"detectors": list(detectors), "datasets": list(datasets), "forecast_configs": list(forecast_configs)},
        channels=list(channels),
    )  # fmt: skip
