"""The bulk write path: binary COPY into a staging table, then one set-based INSERT ... ON CONFLICT.

Callers open a transaction, `stage()` any number of validated chunks and `finish()` once; nothing
reaches the points table until `finish()`, so a strict upload that fails leaves no trace but its batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.db import connection

from ingestion.models import Dataset, DuplicatePolicy, Point, Record, Series
from ingestion.parsers import PointColumns

POINT_TABLE = Point._meta.db_table
SERIES_TABLE = Series._meta.db_table
RECORD_TABLE = Record._meta.db_table
STAGE_TABLE = "ingest_stage_points"

# PostgreSQL's binary timestamps count microseconds from 2000-01-01.
PG_EPOCH_OFFSET_US = 946_684_800 * 1_000_000
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"
POINT_ROW = np.dtype(
    [("fields", ">i2"), ("len_series", ">i4"), ("series", ">i8"), ("len_ts", ">i4"), ("ts", ">i8"),
     ("len_value", ">i4"), ("value", ">f8")]
)  # fmt: skip


@dataclass
class LoadResult:
    staged: int = 0
    inserted: int = 0
    updated: int = 0
    # series id -> (first ts, last ts) of the points that were inserted or changed
    touched: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)

    @property
    def duplicate(self) -> int:
        return self.staged - self.inserted - self.updated


def encode_points_binary(series_ids: np.ndarray, ts_us: np.ndarray, values: np.ndarray) -> bytes:
    """COPY BINARY payload for (bigint, timestamptz, float8) rows, built in one vectorised step."""
    rows = np.empty(len(series_ids), dtype=POINT_ROW)
    rows["fields"] = 3
    rows["len_series"] = rows["len_ts"] = rows["len_value"] = 8
    rows["series"] = series_ids
    rows["ts"] = ts_us - PG_EPOCH_OFFSET_US
    rows["value"] = values
    return COPY_HEADER + rows.tobytes() + COPY_TRAILER


class PointLoader:
    """Stages validated points of one dataset and merges them in a single statement."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.series_ids: dict[tuple[str, str], int] = {}
        self.staged = 0
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} "
                "(series_id bigint, ts timestamptz, value float8) ON COMMIT DROP"
            )
            cursor.execute(f"TRUNCATE {STAGE_TABLE}")

    def stage(self, columns: PointColumns) -> None:
        if not len(columns.value):
            return
        ids = self._series_ids(columns.metric, columns.labels)
        payload = encode_points_binary(ids, columns.ts_us, columns.value)
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY {STAGE_TABLE} (series_id, ts, value) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(payload)
        self.staged += len(ids)

    def _series_ids(self, metrics: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Series id per point: each distinct (metric, labels) is resolved once, created if new."""
        codes, uniques = _factorize_pairs(metrics, labels)
        missing = [pair for pair in uniques if pair not in self.series_ids]
        if missing:
            self.series_ids.update(series_get_or_create_many(dataset=self.dataset, keys=missing))
        lookup = np.array([self.series_ids[pair] for pair in uniques], dtype=np.int64)
        return lookup[codes]

    def finish(self) -> LoadResult:
        result = LoadResult(staged=self.staged)
        if not self.staged:
            return result
        sql = _MERGE_OVERWRITE if self.dataset.duplicate_policy == DuplicatePolicy.OVERWRITE else _MERGE_KEEP_FIRST
        with connection.cursor() as cursor:
            cursor.execute(sql)
            for series_id, inserted, updated, first_ts, last_ts in cursor.fetchall():
                result.inserted += inserted
                result.updated += updated
                result.touched[series_id] = (first_ts, last_ts)
        return result


def _factorize_pairs(metrics: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list[tuple[str, str]]]:
    import pandas as pd

    metric_codes, metric_uniques = pd.factorize(metrics)
    label_codes, label_uniques = pd.factorize(labels)
    pair_codes, pair_uniques = pd.factorize(metric_codes.astype(np.int64) * len(label_uniques) + label_codes)
    pairs = [(metric_uniques[p // len(label_uniques)], label_uniques[p % len(label_uniques)]) for p in pair_uniques]
    return pair_codes, pairs


def series_get_or_create_many(*, dataset: Dataset, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Ids of the (metric, canonical labels JSON) series, creating the missing ones in one statement."""
    metrics = [metric for metric, _ in keys]
    labels = [labels for _, labels in keys]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {SERIES_TABLE} (dataset_id, metric, labels, point_count, created_at, updated_at)
            SELECT %s, m, l::jsonb, 0, now(), now() FROM unnest(%s::text[], %s::text[]) AS k(m, l)
            ON CONFLICT (dataset_id, metric, labels) DO NOTHING
            """,
            [dataset.pk, metrics, labels],
        )
        cursor.execute(
            f"""
            SELECT s.id, k.m, k.l FROM unnest(%s::text[], %s::text[]) AS k(m, l)
            JOIN {SERIES_TABLE} s ON s.dataset_id = %s AND s.metric = k.m AND s.labels = k.l::jsonb
            """,
            [metrics, labels, dataset.pk],
        )
        return {(metric, label_text): series_id for series_id, metric, label_text in cursor.fetchall()}


# The merge returns, per touched series: inserted, updated, first and last ts of what changed, and
# moves the series' counters in the same statement so summaries never have to count points.
_COUNTERS = f"""
touched AS (
    SELECT series_id, count(*) FILTER (WHERE is_new) AS inserted, count(*) FILTER (WHERE NOT is_new) AS updated,
           min(ts) AS first_ts, max(ts) AS last_ts,
           min(ts) FILTER (WHERE is_new) AS first_new, max(ts) FILTER (WHERE is_new) AS last_new
    FROM merged GROUP BY series_id
), counted AS (
    UPDATE {SERIES_TABLE} s
    SET point_count = s.point_count + t.inserted,
        first_ts = LEAST(s.first_ts, t.first_new), last_ts = GREATEST(s.last_ts, t.last_new), updated_at = now()
    FROM touched t WHERE s.id = t.series_id
)
SELECT series_id, inserted, updated, first_ts, last_ts FROM touched
"""

# keep_first: a staged row loses to a stored one; within one upload the first row wins (staging keeps
# upload order and DO NOTHING skips later rows for the same key).
_MERGE_KEEP_FIRST = f"""
WITH merged AS (
    INSERT INTO {POINT_TABLE} (series_id, ts, value)
    SELECT series_id, ts, value FROM {STAGE_TABLE}
    ON CONFLICT (series_id, ts) DO NOTHING
    RETURNING series_id, ts, true AS is_new
), {_COUNTERS}
"""

# overwrite: the last row of the upload for a key wins; an identical value is a duplicate, not an update.
_MERGE_OVERWRITE = f"""
WITH latest AS (
    SELECT DISTINCT ON (series_id, ts) series_id, ts, value FROM {STAGE_TABLE} ORDER BY series_id, ts, ctid DESC
), merged AS (
    INSERT INTO {POINT_TABLE} AS p (series_id, ts, value)
    SELECT series_id, ts, value FROM latest
    ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value WHERE p.value IS DISTINCT FROM EXCLUDED.value
    RETURNING series_id, ts, (xmax = 0) AS is_new
), {_COUNTERS}
"""


# --- records ------------------------------------------------------------------------


def records_merge(*, dataset: Dataset, external_ids: list, ts: list, features: list[str]) -> LoadResult:
    """Insert table rows (features as JSON text); a known external id follows the duplicate policy.

    Within one upload, keep_first keeps the first row of an external id and overwrite the last.
    """
    overwrite = dataset.duplicate_policy == DuplicatePolicy.OVERWRITE
    conflict = (
        "DO UPDATE SET features = EXCLUDED.features, ts = EXCLUDED.ts, updated_at = now() "
        "WHERE r.features IS DISTINCT FROM EXCLUDED.features OR r.ts IS DISTINCT FROM EXCLUDED.ts"
        if overwrite
        else "DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH staged AS (
                SELECT DISTINCT ON (coalesce(e, 'row:' || n)) e, t, f
                FROM unnest(%s::text[], %s::timestamptz[], %s::jsonb[]) WITH ORDINALITY AS u(e, t, f, n)
                ORDER BY coalesce(e, 'row:' || n), n {"DESC" if overwrite else "ASC"}
            ), merged AS (
                INSERT INTO {RECORD_TABLE} AS r (dataset_id, external_id, ts, features, created_at, updated_at)
                SELECT %s, e, t, f, now(), now() FROM staged
                ON CONFLICT (dataset_id, external_id) {conflict}
                RETURNING (xmax = 0) AS is_new
            )
            SELECT count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE NOT is_new) FROM merged
            """,
            [external_ids, ts, features, dataset.pk],
        )
        inserted, updated = cursor.fetchone()
    return LoadResult(staged=len(features), inserted=inserted, updated=updated)
