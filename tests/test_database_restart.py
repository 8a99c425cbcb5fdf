"""PostgreSQL goes away in the middle of an upload: a clean, retryable 503, and nothing half-written.

gunicorn serves the API here, connected to the test database through a TCP proxy that the test cuts (every
connection dropped, new ones refused) while the upload is being loaded, and restores a moment later: what
a client of a restarting PostgreSQL sees. The shared PostgreSQL itself is never touched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from django.conf import settings

from ingestion.models import IngestBatch, IngestStatus, Point
from ingestion.services import ingest_batches_requeue
from teams.models import TokenScope
from teams.services import api_token_create
from tests.celery_worker import database_url
from tests.ingestion.helpers import make_dataset

ROOT = Path(__file__).resolve().parent.parent
ROWS = 300_000
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CuttableProxy:
    """Forwards TCP connections to the database; cut() drops them all and refuses new ones until restore()."""

    def __init__(self, host: str, port: int) -> None:
        self.target, self.port, self.refusing = (host, port), _free_port(), False
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            if self.refusing:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.refusing = True
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sockets.clear()

    def restore(self) -> None:
        self.refusing = False


@pytest.fixture
def server_behind_proxy():
    db = settings.DATABASES["default"]
    proxy = CuttableProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    port = _free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DB_CONN_MAX_AGE": "0",
           "DATABASE_URL": database_url({**db, "HOST": "127.0.0.1", "PORT": str(proxy.port)})}  # fmt: skip
    args = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
            "--timeout", "120"]  # fmt: skip
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", proxy
    process.terminate()
    process.wait(30)


def _csv() -> bytes:
    ts = pd.date_range("2024-01-01", periods=ROWS // 3, freq="min", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    frame = pd.DataFrame({"ts": ts, **{m: np.arange(len(ts), dtype=float) for m in ("cpu", "mem", "disk")}})
    return frame.to_csv(index=False).encode()


def test_it_answers_a_retryable_503_and_stores_nothing_when_the_database_restarts(server_behind_proxy, team, owner):
    base_url, proxy = server_behind_proxy
    dataset = make_dataset(team)
    key = api_token_create(user=owner, name="upload", scope=TokenScope.WRITE).key
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
    url, body, answer = f"{base_url}/api/v1/datasets/{dataset.pk}/points", _csv(), {}
    upload = lambda: answer.update(response=requests.post(url, data=body, headers=headers, timeout=120))  # noqa: E731

    sender = threading.Thread(target=upload)
    sender.start()
    deadline = time.monotonic() + 60
    while not IngestBatch.objects.filter(dataset=dataset, status=IngestStatus.PROCESSING).exists():
        assert time.monotonic() < deadline and sender.is_alive(), "the upload never started loading"
        time.sleep(0.02)
    proxy.cut()  # PostgreSQL "restarts" while the upload is loaded
    sender.join(120)
    proxy.restore()

    response = answer["response"]
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5" and "Retry" in response.json()["detail"]
    assert Point.objects.filter(series__dataset=dataset).count() == 0  # nothing half-written
    ingest_batches_requeue(queued_for=timedelta(hours=1), processing_for=timedelta(0))  # the sweep, later
    batch = IngestBatch.objects.get(dataset=dataset)
    assert batch.status == IngestStatus.FAILED and "nothing was stored" in batch.message

    again = requests.post(url, data=body, headers=headers, timeout=120)  # the client retries
    assert again.status_code == 201 and again.json()["inserted"] == ROWS
