"""Detection benchmarks: `manage.py bench nab` (quality) and `manage.py bench detect` (throughput)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from django.db import connection, transaction

from detectors.algorithms.registry import algorithm_keys
from detectors.evaluation.nab import run_nab
from detectors.models import DetectionRun, RunStatus, RunTrigger
from detectors.services.configs import detector_create
from detectors.services.runs import run_create, run_enqueue
from detectors.services.scoring import MIN_TRAINING_POINTS, TRAINING_FRACTION
from ingestion.models import Dataset, IngestSource, Point, Series
from ingestion.services import ingest_points
from teams.models import Team

# The published NAB scoreboard (standard profile), printed beside our figures.
PUBLISHED = {"Numenta HTM": 70.5, "CAD OSE": 69.9, "Skyline": 58.2, "KNN CAD": 58.0, "Random Cut Forest": 51.7,
             "windowed Gaussian": 39.6}  # fmt: skip
ROOT = Path(__file__).resolve().parent.parent


def bench_nab(*, algorithms: list[str], processes: int = 2, log=print, **_) -> dict:
    """Every algorithm over every NAB file, streaming, scored twice (see README: Benchmarks)."""
    keys = algorithms or algorithm_keys()
    results_dir = Path(tempfile.mkdtemp(prefix="nab-"))
    log(f"NAB v1.1, {len(keys)} algorithm(s), results in {results_dir}")
    report = run_nab(keys, results_dir, processes=processes)
    log(f"{'algorithm':<18} {'standard':>9} {'low FP':>8} {'low FN':>8} {'own 0/1':>8} {'seconds':>8}")
    for key, r in sorted(report.items(), key=lambda item: -item[1]["standard"]):
        log(f"{key:<18} {r['standard']:9.1f} {r['low_fp']:8.1f} {r['low_fn']:8.1f} {r['own_standard']:8.1f}"
            f" {r['seconds']:8.0f}")  # fmt: skip
    log("published (standard, threshold searched; not strictly causal): "
        + ", ".join(f"{name} {score}" for name, score in PUBLISHED.items()))  # fmt: skip
    return {
        key: {"standard": round(r["standard"], 2), "low_fp": round(r["low_fp"], 2), "low_fn": round(r["low_fn"], 2),
              "own_standard": round(r["own_standard"], 2)}
        for key, r in report.items()
    }  # fmt: skip


# --- throughput -----------------------------------------------------------------------------

SERIES = 1000
POINTS = 1000
BENCH_QUEUE = "bench-detect"


def _series_values(n_series: int, n_points: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    rng = np.random.default_rng(11)
    stamps = pd.date_range("2024-01-01", periods=n_points, freq="5min", tz="UTC")
    season = np.sin(np.arange(n_points) * 2 * np.pi / 288)
    values = 50 + 10 * season + rng.normal(0, 1, (n_series, n_points))
    values[:, rng.integers(200, n_points, 3)] += 15
    return stamps, values


def _one_math_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _direct_one(task) -> int:
    from detectors.algorithms.postprocess import detect

    algorithm, stamps, values, train = task
    detect(algorithm, values, stamps, train_size=train)
    return len(values) - train


def _load(dataset: Dataset, stamps, values) -> None:
    n_series, n_points = values.shape
    frame = pd.DataFrame({
        "metric": np.repeat([f"m{i:04d}" for i in range(n_series)], n_points),
        "ts": np.tile(stamps, n_series),
        "value": values.ravel(),
    })  # fmt: skip
    ingest_points(dataset=dataset, data=frame, source=IngestSource.SAMPLE)


def _settle() -> None:
    """Let PostgreSQL finish with the load (statistics, visibility map, dirty pages) before timing, as
    autovacuum would in a running system, so the timed run does not pay for the setup."""
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {Point._meta.db_table}")
        cursor.execute(f"ANALYZE {Series._meta.db_table}")
        cursor.execute("CHECKPOINT")


def _start_workers(count: int) -> list[subprocess.Popen]:
    env = {**os.environ, "DB_CONN_MAX_AGE": "60", "LOG_LEVEL": "WARNING"}
    workers = []
    for i in range(count):
        args = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", BENCH_QUEUE,
                "-n", f"bench{i}-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip"]  # fmt: skip
        workers.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    return workers


def _wait_workers(count: int, timeout: float = 60) -> None:
    from config.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if sum(1 for reply in replies for name in reply if name.startswith("bench")) >= count:
            return
    raise RuntimeError("the benchmark's Celery workers did not start")


def bench_detect(*, algorithms: list[str], processes: int = 2, scale: float = 1.0, log=print, **_) -> dict:
    """1,000 series x 1,000 points through Celery (read from PostgreSQL, fit, score, write anomalies)
    against the same algorithm on in-memory arrays with the same number of processes."""
    algorithm = (algorithms or ["auto"])[0]
    n_series = max(int(SERIES * scale), 2)
    stamps, values = _series_values(n_series, POINTS)
    train = max(MIN_TRAINING_POINTS, int(TRAINING_FRACTION * POINTS))
    scored = n_series * (POINTS - train)
    log(f"detect benchmark: {n_series} series x {POINTS} points, algorithm {algorithm}, {processes} processes")

    started = time.perf_counter()
    # The same footing as the workers: one process per core, one math thread per process.
    with get_context("fork").Pool(processes, initializer=_one_math_thread) as pool:
        direct_points = sum(pool.map(_direct_one, [(algorithm, stamps, row, train) for row in values], chunksize=8))
    direct_s = time.perf_counter() - started

    suffix = uuid.uuid4().hex[:8]
    team = Team.objects.create(name=f"bench {suffix}", slug=f"bench-{suffix}")
    workers = _start_workers(processes)
    try:
        dataset = Dataset.objects.create(team=team, name="bench")
        _load(dataset, stamps, values)
        _settle()
        detector = detector_create(dataset=dataset, name="bench", algorithm=algorithm)
        _wait_workers(processes)
        started = time.perf_counter()
        with transaction.atomic():
            run = run_create(detector=detector, trigger=RunTrigger.BACKFILL)
            run_enqueue(run=run, queue=BENCH_QUEUE)
        run = _wait_run(run.pk)
        platform_s = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        team.delete()
    if run.status != RunStatus.SUCCEEDED or run.points_scored != scored or direct_points != scored:
        raise RuntimeError(f"unexpected run: {run.status}, {run.points_scored} points ({scored} expected): {run.error}")
    figures = {
        "series": n_series, "points_per_series": POINTS, "algorithm": algorithm, "processes": processes,
        "points_scored": scored, "platform_points_per_s": round(scored / platform_s),
        "direct_points_per_s": round(scored / direct_s), "ratio": round(direct_s / platform_s, 3),
        "platform_s": round(platform_s, 2), "direct_s": round(direct_s, 2), "anomalies": run.anomalies_found,
    }  # fmt: skip
    log(f"  direct, in-memory arrays  {figures['direct_points_per_s']:>10,} points/s  {direct_s:7.1f} s")
    log(f"  platform, Celery workers  {figures['platform_points_per_s']:>10,} points/s  {platform_s:7.1f} s"
        f"  ratio {figures['ratio']:.2f} (target >= 0.8); {run.anomalies_found} anomalies written")  # fmt: skip
    return figures


def _wait_run(run_id: int, timeout: float = 3600) -> DetectionRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = DetectionRun.objects.get(pk=run_id)
        if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            return run
        time.sleep(0.2)
    raise RuntimeError("the benchmark run did not finish")


# --- incident extents -------------------------------------------------------------------------


def bench_extents(*, processes: int = 2, log=print, **_) -> dict:
    """Sustained faults with known extents, scored row by row (see detectors/evaluation/extents.py)."""
    from detectors.evaluation.extents import run_extents

    started = time.perf_counter()
    report = run_extents(processes=processes)
    log(f"Incident extents: {report['overall']['cases']} injected faults, auto at the default sensitivity, "
        f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    log(f"{'fault':<12} {'cases':>5} {'found':>5} {'precision':>9} {'recall':>7} {'F1':>6} {'FAR':>7} {'delay':>6}")
    for name, r in [*report["faults"].items(), ("overall", report["overall"])]:
        delay = "-" if r["onset_delay_median"] is None else f"{r['onset_delay_median']:.0f}"
        log(f"{name:<12} {r['cases']:>5} {r['detected']:>5} {r['precision']:>9.3f} {r['recall']:>7.3f} "
            f"{r['f1']:>6.3f} {r['far']:>7.4f} {delay:>6}")  # fmt: skip
    log(
        "Rows: precision, recall and F1 of rows inside incidents; FAR: share of clean scored rows inside one; "
        "delay: median rows from a fault's start to its first alarm. Target: F1 >= 0.80 with FAR <= 0.02."
    )
    overall = report["overall"]
    return {
        "rows": {key: overall[key] for key in ("precision", "recall", "f1", "far")},
        "onset_delay_median": overall["onset_delay_median"],
        "faults": report["faults"],
    }
