"""`manage.py bench ingest`: the platform's bulk CSV path against raw COPY of the same CSV.

The reference is PostgreSQL's text COPY of the very same CSV bytes into a bare table with the same
primary key shape; the platform parses and validates the CSV, resolves series, stages with binary
COPY and merges with ON CONFLICT, keeping batch records and series counters. The second platform
upload sends identical data, so every row is a duplicate.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pandas as pd
from django.db import connection, transaction

from ingestion.models import Dataset, IngestSource
from ingestion.services import ingest_points
from teams.models import Team

SERIES = 100
POINTS = 1_000_000


def make_csv(*, series: int, points: int, seed: int = 7) -> bytes:
    """Long-format CSV (metric,ts,value) as a client would send it, ordered by time."""
    per_series = points // series
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2024-01-01", periods=per_series, freq="min", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    frame = pd.DataFrame(
        {
            "metric": np.tile([f"metric_{i:03d}" for i in range(series)], per_series),
            "ts": np.repeat(np.asarray(stamps), series),
            "value": np.round(rng.normal(100, 15, per_series * series), 4),
        }
    )
    return frame.to_csv(index=False).encode()


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _raw_copy(csv: bytes, table: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (metric text, ts timestamptz, value float8, PRIMARY KEY (metric, ts))")
        with cursor.copy(f"COPY {table} (metric, ts, value) FROM STDIN (FORMAT csv, HEADER true)") as copy:
            copy.write(csv)


def _one_round(csv: bytes, rows: int) -> tuple[float, float, float]:
    """(raw COPY s, first upload s, re-upload s) on a fresh table and a fresh dataset."""
    suffix = uuid.uuid4().hex[:8]
    table = f"bench_raw_copy_{suffix}"
    team = Team.objects.create(name=f"bench {suffix}", slug=f"bench-{suffix}")
    dataset = Dataset.objects.create(team=team, name="bench")
    try:
        copy_s = _timed(lambda: _raw_copy(csv, table))
        batches = []
        platform_s = _timed(lambda: batches.append(_upload(dataset, csv)))
        reupload_s = _timed(lambda: batches.append(_upload(dataset, csv)))
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        team.delete()
    first, second = batches
    if first.inserted != rows or second.duplicate != rows:
        raise RuntimeError(f"unexpected counts: first {first.inserted} inserted, second {second.duplicate} dup")
    return copy_s, platform_s, reupload_s


def bench_ingest(*, scale: float = 1.0, repeat: int = 3, log=print, **_) -> dict:
    points = max(int(POINTS * scale), SERIES)
    csv = make_csv(series=SERIES, points=points)
    rows = points // SERIES * SERIES
    log(f"ingest benchmark: {rows:,} points over {SERIES} series, {len(csv) / 1e6:.1f} MB of CSV, "
        f"median of {repeat} rounds")  # fmt: skip
    rounds = [_one_round(csv, rows) for _ in range(repeat)]
    copy_s, platform_s, reupload_s = (float(np.median(column)) for column in zip(*rounds, strict=True))
    figures = {
        "points": rows,
        "series": SERIES,
        "copy_rows_per_s": round(rows / copy_s),
        "platform_rows_per_s": round(rows / platform_s),
        "reupload_rows_per_s": round(rows / reupload_s),
        "ratio": round(copy_s / platform_s, 3),
        "reupload_ratio": round(copy_s / reupload_s, 3),
        "copy_s": round(copy_s, 3),
        "platform_s": round(platform_s, 3),
        "reupload_s": round(reupload_s, 3),
    }
    log(f"  raw COPY (reference)   {figures['copy_rows_per_s']:>12,} rows/s  {copy_s:6.2f} s")
    log(f"  platform, first upload {figures['platform_rows_per_s']:>12,} rows/s  {platform_s:6.2f} s"
        f"  ratio {figures['ratio']:.2f} (target >= 0.5)")  # fmt: skip
    log(f"  platform, re-upload    {figures['reupload_rows_per_s']:>12,} rows/s  {reupload_s:6.2f} s"
        f"  ratio {figures['reupload_ratio']:.2f} (target >= 1.0)")  # fmt: skip
    return figures


def _upload(dataset: Dataset, csv: bytes):
    return ingest_points(dataset=dataset, data=csv, source=IngestSource.API_CSV, content_type="text/csv")
