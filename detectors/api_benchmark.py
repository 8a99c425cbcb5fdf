"""`manage.py bench api`: API latency under concurrent clients, beside the same SQL run directly.

The data set (1,000 series x 10,000 points, 100,000 anomalies; `--scale` multiplies the series) is made once
per database with set-based SQL and reused by later runs. 50 clients then read for a fixed time, each sending
one request after another, half to the anomalies list (newest first, 100 a page) and half to a window of
1,000 raw points of a random series, to gunicorn. The reference runs, with the same concurrency, the same
SELECTs those requests run (captured from the endpoints themselves): with pgbench, PostgreSQL's own C
client, one script per request, where pgbench is installed (on PATH or in pgserver's wheel), else over
psycopg connections of its own.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from detectors.models import Detector
from ingestion.models import Dataset, Series
from teams.models import Role, Team, TokenScope
from teams.services import api_token_create, membership_set

SERIES, POINTS_PER_SERIES, ANOMALIES_PER_SERIES = 1_000, 10_000, 100
CLIENTS = 50
DURATION_S = 20
WINDOW = 1_000  # points per read
T0 = datetime(2025, 1, 1, tzinfo=UTC)
TEAM = "bench-api"
ROOT = Path(__file__).resolve().parent.parent


def bench_api(*, scale: float, processes: int, log, **_) -> dict:
    n_series = max(10, int(SERIES * scale))
    duration = DURATION_S if scale >= 1 else max(2.0, DURATION_S * scale)
    call_command("createcachetable", verbosity=0)  # the rate-limit counters' table (CACHE_URL=db), as gunicorn needs it
    dataset = data_ensure(n_series=n_series, log=log)
    key = api_token_create(user=_bench_user(dataset.team), name="bench api", scope=TokenScope.READ).key
    paths = request_paths(dataset=dataset, count=400)
    statements = [captured_selects(path, key) for path in paths[:40]]
    workers = 2 * processes + 1
    log(f"gunicorn with {workers} workers; {CLIENTS} clients for {duration:.0f} s on each side")
    with gunicorn(workers=workers) as (host, port):
        http_load(host, port, key, paths[:50], clients=CLIENTS, duration=2)  # warm up every worker
        api = http_load(host, port, key, paths, clients=CLIENTS, duration=duration)
    direct = pgbench_load(statements, clients=CLIENTS, duration=duration) or sql_load(
        statements, clients=CLIENTS, duration=duration
    )
    figures = {"api": api, "direct": direct, "p95_ms": api["p95_ms"], "rps": api["rps"], "clients": CLIENTS,
               "series": n_series, "points": n_series * POINTS_PER_SERIES,
               "anomalies": n_series * ANOMALIES_PER_SERIES, "gunicorn_workers": workers}  # fmt: skip
    _report(figures, log)
    return figures


# --- data ---------------------------------------------------------------------------------


def data_ensure(*, n_series: int, log) -> Dataset:
    """The bench team's dataset with n_series full series and their anomalies; made only when missing."""
    team, _ = Team.objects.get_or_create(slug=TEAM, defaults={"name": "Bench API"})
    dataset, _ = Dataset.objects.get_or_create(team=team, name=f"bench api {n_series}")
    detector, _ = Detector.objects.get_or_create(dataset=dataset, name="bench api")
    have = Series.objects.filter(dataset=dataset, point_count=POINTS_PER_SERIES).count()
    if have == n_series:
        log(f"reusing the data set in this database: {n_series:,} series, {n_series * POINTS_PER_SERIES:,} points")
        return dataset
    log(
        f"making the data set: {n_series:,} series x {POINTS_PER_SERIES:,} points, "
        f"{ANOMALIES_PER_SERIES} anomalies each"
    )
    Series.objects.filter(dataset=dataset).delete()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        _series_insert(cursor, dataset.pk, n_series)
        _points_insert(cursor, dataset.pk)
        _anomalies_insert(cursor, dataset.pk, detector.pk)
        cursor.execute("ANALYZE ingestion_series; ANALYZE ingestion_point; ANALYZE detectors_anomaly")
    log(f"made in {time.perf_counter() - started:.0f} s")
    return dataset


def _series_insert(cursor, dataset_id: int, n_series: int) -> None:
    last = T0 + timedelta(minutes=POINTS_PER_SERIES - 1)
    cursor.execute(
        """
        INSERT INTO ingestion_series
            (dataset_id, metric, labels, point_count, first_ts, last_ts, created_at, updated_at)
        SELECT %s, 'requests', jsonb_build_object('host', 'h' || lpad(i::text, 5, '0')), %s, %s, %s, now(), now()
        FROM generate_series(1, %s) AS i
        """,
        [dataset_id, POINTS_PER_SERIES, T0, last, n_series],
    )


def _points_insert(cursor, dataset_id: int) -> None:
    """One set-based INSERT per 100 series (a million rows), in time order within each series."""
    ids = list(Series.objects.filter(dataset_id=dataset_id).order_by("pk").values_list("pk", flat=True))
    for at in range(0, len(ids), 100):
        cursor.execute(
            """
            INSERT INTO ingestion_point (series_id, ts, value)
            SELECT s, %s + g * interval '1 minute', 100 + 10 * sin(g / 60.0) + random()
            FROM unnest(%s::bigint[]) AS s, generate_series(0, %s - 1) AS g
            """,
            [T0, ids[at : at + 100], POINTS_PER_SERIES],
        )


def _anomalies_insert(cursor, dataset_id: int, detector_id: int) -> None:
    step = POINTS_PER_SERIES // ANOMALIES_PER_SERIES
    cursor.execute(
        """
        INSERT INTO detectors_anomaly (kind, detector_id, series_id, start_ts, end_ts, peak_ts, value, expected,
            lower, upper, score, severity, explanation, review_status, status, closed_ts, close_reason, points,
            direction, state, last_seen, created_at, updated_at)
        SELECT 'observed', %s, s.id, t, t + interval '4 minutes', t + interval '1 minute', to_jsonb(140.5), 100,
            90, 110, 0.6, 'high', jsonb_build_object('text', 'requests was 140.5, expected 90.0 to 110.0: a spike.'),
            'unreviewed', 'closed', t + interval '14 minutes', 'recovered', 5, '', '{}', t + interval '4 minutes',
            now(), now()
        FROM ingestion_series AS s, generate_series(0, %s - 1) AS k,
            LATERAL (SELECT %s + (k * %s + 7) * interval '1 minute' AS t) AS at
        WHERE s.dataset_id = %s
        """,
        [detector_id, ANOMALIES_PER_SERIES, T0, step, dataset_id],
    )


def _bench_user(team: Team):
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench-api")
    membership_set(team=team, user=user, role=Role.ANALYST)
    return user


def request_paths(*, dataset: Dataset, count: int, seed: int = 1) -> list[str]:
    """Half anomaly list pages, half windows of raw points of random series, shuffled."""
    rng = random.Random(seed)
    ids = list(Series.objects.filter(dataset=dataset).values_list("pk", flat=True))
    paths = []
    for i in range(count):
        if i % 2:
            paths.append("/api/v1/anomalies")
            continue
        start = T0 + timedelta(minutes=rng.randrange(POINTS_PER_SERIES - WINDOW))
        end = start + timedelta(minutes=WINDOW)
        paths.append(
            f"/api/v1/series/{rng.choice(ids)}/points?from={start:%Y-%m-%dT%H:%M:%SZ}&to={end:%Y-%m-%dT%H:%M:%SZ}"
        )
    rng.shuffle(paths)
    return paths


def captured_selects(path: str, key: str) -> list[str]:
    """The SELECTs one request to path runs, as sent to PostgreSQL (parameters in place)."""
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {key}", SERVER_NAME="localhost")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, secure=True)
    assert response.status_code == 200, (path, response.status_code)
    return [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]


# --- load -----------------------------------------------------------------------------------


@contextmanager
def gunicorn(*, workers: int):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "HTTPS": "false",
           "API_THROTTLE_TOKEN_RATE": "100000000/min", "LOG_LEVEL": "WARNING",
           "DATABASE_URL": os.environ.get("DATABASE_URL", ""), "SECRET_KEY": settings.SECRET_KEY}  # fmt: skip
    args = [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    try:
        _wait_listening(port, process)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(30)


def _wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not listen within 60 s")


def http_load(host: str, port: int, key: str, paths: list[str], *, clients: int, duration: float) -> dict:
    return asyncio.run(_http_load(host, port, key, paths, clients, duration))


async def _http_load(host, port, key, paths, clients, duration) -> dict:
    latencies: list[float] = []
    failures: list[int] = []
    deadline = time.perf_counter() + duration

    async def client(offset: int) -> None:
        at = offset
        while time.perf_counter() < deadline:
            path = paths[at % len(paths)]
            at += clients
            started = time.perf_counter()
            status = await _get(host, port, path, key)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                failures.append(status)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return _summary(latencies, time.perf_counter() - started, failures)


async def _get(host: str, port: int, path: str, key: str) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    writer.write(request.encode())
    body = await reader.read()  # gunicorn's sync workers close the connection after each response
    writer.close()
    return int(body[9:12]) if body[:5] == b"HTTP/" else 0


def sql_load(statements: list[list[str]], *, clients: int, duration: float) -> dict:
    """Each thread replays whole requests' SELECTs on its own connection, one request after another."""
    latencies: list[float] = []
    deadline = time.perf_counter() + duration
    conninfo = _conninfo()

    def client(offset: int) -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            at = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                for sql in statements[at % len(statements)]:
                    conn.execute(sql).fetchall()
                latencies.append(time.perf_counter() - started)
                at += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return _summary(latencies, time.perf_counter() - started, []) | {"client": "psycopg"}


def _pgbench() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    try:
        import pgserver
    except ImportError:
        return None
    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
    return str(bundled) if bundled.exists() else None


def pgbench_load(statements: list[list[str]], *, clients: int, duration: float) -> dict | None:
    """pgbench over one script per captured request, each picked at random; None without pgbench."""
    binary = _pgbench()
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        scripts = []
        for i, request in enumerate(statements):
            path = Path(tmp) / f"request{i}.sql"
            path.write_text("".join(sql.replace("\n", " ") + ";\n" for sql in request))
            scripts += ["-f", str(path)]
        args = [binary, "-n", "-c", str(clients), "-j", "2", "-T", str(max(1, round(duration))), "-l",
                "--log-prefix", f"{tmp}/log", *scripts, *_pgbench_connection()]  # fmt: skip
        done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **_pgbench_env()})
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed: {done.stderr[-2000:]}")
        # Each log line: client, transaction, latency in microseconds, script, epoch seconds, microseconds.
        rows = [line.split() for log in Path(tmp).glob("log*") for line in log.read_text().splitlines()]
    latencies = [int(row[2]) / 1e6 for row in rows]
    span = (max(int(r[4]) + int(r[5]) / 1e6 for r in rows) - min(int(r[4]) + int(r[5]) / 1e6 for r in rows)) or 1
    return _summary(latencies, span, []) | {"client": "pgbench"}


def _pgbench_connection() -> list[str]:
    db = settings.DATABASES["default"]
    args = ["-d", db["NAME"]]
    for flag, key in (("-h", "HOST"), ("-p", "PORT"), ("-U", "USER")):
        if db[key]:
            args += [flag, str(db[key])]
    return args


def _pgbench_env() -> dict:
    password = settings.DATABASES["default"]["PASSWORD"]
    return {"PGPASSWORD": password} if password else {}


def _conninfo() -> str:
    db = settings.DATABASES["default"]
    parts = {"dbname": db["NAME"], "user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"],
             "port": db["PORT"]}  # fmt: skip
    return " ".join(f"{k}={v}" for k, v in parts.items() if v)


def _summary(latencies: list[float], elapsed: float, failures: list[int]) -> dict:
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    p50, p95, p99 = (round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99))
    return {"requests": len(latencies), "failed": len(failures), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
            "rps": round(len(latencies) / elapsed, 1)}  # fmt: skip


def _report(figures: dict, log) -> None:
    log(f"{figures['series']:,} series, {figures['points']:,} points, {figures['anomalies']:,} anomalies; "
        f"{figures['clients']} concurrent clients")  # fmt: skip
    log(f"{'':28}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>9}{'failed':>8}")
    direct = f"direct SQL, {figures['direct']['client']} (reference)"
    for name, row in ((direct, figures["direct"]), ("API through gunicorn", figures["api"])):
        log(f"{name:28}{row['p50_ms']:>9}{row['p95_ms']:>9}{row['p99_ms']:>9}{row['rps']:>9}{row['failed']:>8}")
    log(f"p95 target 100 ms: {'met' if figures['p95_ms'] <= 100 else 'missed'}")
