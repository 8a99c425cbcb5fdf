"""The bulk write path for points: set-based, one chunk at a time, inside the caller's transaction.

Per chunk: resolve the series (creating new ones) and lock them, sort the points by key and drop
repeats within the upload (vectorised), then split them by the series' last timestamp:
- points after it cannot exist yet (every writer holds the series lock), so they go straight into
  the points table with binary COPY, the fastest path PostgreSQL has;
- the rest are compared with the stored points of their span, read in one query and matched in
  numpy: new ones are appended with COPY, changed ones (overwrite policy) updated in one statement.
  When the span holds far more points than were sent, they are staged and merged with one
  INSERT ... ON CONFLICT instead, which applies the dataset's duplicate policy.
Series counters (points, first and last ts) move in the same transaction, so summaries never count.
A strict upload that fails is rolled back by the caller and leaves no trace but its batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from django.db import connection

from ingestion.models import Dataset, DuplicatePolicy, Point, Record, Series
from ingestion.parsers import PointColumns, SeriesKey

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
PACKED_POINT = np.dtype([("ts", ">i8"), ("value", ">f8")])  # timestamptz_send || float8send
NO_TS = np.iinfo(np.int64).min
# Re-sent points are checked by reading the stored points of their spans, unless those hold more than
# this many times the points sent (plus the slack): then INSERT ... ON CONFLICT probes them one by one.
SPAN_READ_FACTOR = 4
SPAN_READ_SLACK = 10_000


@dataclass
class LoadResult:
    staged: int = 0  # valid points offered
    inserted: int = 0
    updated: int = 0
    # series id -> (first ts, last ts) of the points that were inserted or changed
    touched: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)

    @property
    def duplicate(self) -> int:
        return self.staged - self.inserted - self.updated

    def touch(self, series_id: int, first: datetime, last: datetime) -> None:
        if series_id in self.touched:
            old_first, old_last = self.touched[series_id]
            first, last = min(first, old_first), max(last, old_last)
        self.touched[series_id] = (first, last)


def encode_points_binary(series_ids: np.ndarray, ts_us: np.ndarray, values: np.ndarray) -> bytes:
    """COPY BINARY payload for (bigint, timestamptz, float8) rows, built in one vectorised step."""
    rows = np.empty(len(series_ids), dtype=POINT_ROW)
    rows["fields"] = 3
    rows["len_series"] = rows["len_ts"] = rows["len_value"] = 8
    rows["series"] = series_ids
    rows["ts"] = ts_us - PG_EPOCH_OFFSET_US
    rows["value"] = values
    return COPY_HEADER + rows.tobytes() + COPY_TRAILER


def _copy_points(table: str, series_ids: np.ndarray, ts_us: np.ndarray, values: np.ndarray) -> None:
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} (series_id, ts, value) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(encode_points_binary(series_ids, ts_us, values))


class PointLoader:
    """Loads validated chunks of one dataset's points; call `load()` per chunk inside one transaction."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.keep_last = dataset.duplicate_policy == DuplicatePolicy.OVERWRITE
        self.series_ids: dict[SeriesKey, int] = {}
        self.result = LoadResult()
        self._staging_ready = False

    def load(self, columns: PointColumns) -> None:
        if not len(columns.value):
            return
        self.result.staged += len(columns.value)
        ids = self._series_ids(columns.series_keys)[columns.series_code]
        order = np.lexsort((columns.ts_us, ids))  # stable: upload order survives among equal keys
        ids, ts_us, values = ids[order], columns.ts_us[order], columns.value[order]
        unique = _unique_keys(ids, ts_us, keep_last=self.keep_last)
        ids, ts_us, values = ids[unique], ts_us[unique], values[unique]
        stats = self._lock_series(ids)
        fresh = ts_us > stats["last"][np.searchsorted(stats["id"], ids)]
        if fresh.any():
            self._append(ids[fresh], ts_us[fresh], values[fresh])
        if not fresh.all():
            self._merge(ids[~fresh], ts_us[~fresh], values[~fresh], stats)

    def _series_ids(self, keys: list[SeriesKey]) -> np.ndarray:
        """Id of each (metric, labels) key, created if new; resolved once per loader."""
        missing = [key for key in keys if key not in self.series_ids]
        if missing:
            self.series_ids.update(series_get_or_create_many(dataset=self.dataset, keys=missing))
        return np.array([self.series_ids[key] for key in keys], dtype=np.int64)

    def _lock_series(self, ids: np.ndarray) -> np.ndarray:
        """Lock the points' series rows for this transaction; their (id, count, first, last) in µs."""
        series = np.unique(ids)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, point_count, (extract(epoch FROM first_ts) * 1000000)::bigint, "
                f"(extract(epoch FROM last_ts) * 1000000)::bigint FROM {SERIES_TABLE} "
                "WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                [series.tolist()],
            )
            rows = [(i, n, NO_TS if lo is None else lo, NO_TS if hi is None else hi) for i, n, lo, hi in cursor]
        return np.array(rows, dtype=[("id", np.int64), ("count", np.int64), ("first", np.int64), ("last", np.int64)])

    def _append(self, ids: np.ndarray, ts_us: np.ndarray, values: np.ndarray) -> None:
        """Points newer than their series' last ts: straight into the table, counters moved in bulk."""
        _copy_points(POINT_TABLE, ids, ts_us, values)
        series, first_index, counts = np.unique(ids, return_index=True, return_counts=True)
        first_us = ts_us[first_index]
        last_us = ts_us[first_index + counts - 1]  # sorted by key, so each run ends at its max ts
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {SERIES_TABLE} s SET point_count = s.point_count + u.n,
                    first_ts = LEAST(s.first_ts, timestamptz 'epoch' + u.lo * interval '1 microsecond'),
                    last_ts = GREATEST(s.last_ts, timestamptz 'epoch' + u.hi * interval '1 microsecond'),
                    updated_at = now()
                FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) AS u(id, n, lo, hi)
                WHERE s.id = u.id
                """,
                [series.tolist(), counts.tolist(), first_us.tolist(), last_us.tolist()],
            )
        self.result.inserted += len(ids)
        for series_id, lo, hi in zip(series.tolist(), first_us.tolist(), last_us.tolist(), strict=True):
            self.result.touch(series_id, utc_from_us(lo), utc_from_us(hi))

    def _merge(self, ids: np.ndarray, ts_us: np.ndarray, values: np.ndarray, stats: np.ndarray) -> None:
        """Points at or before their series' last ts.

        The stored points over the same spans are read in one query and compared in numpy: new points
        are appended with COPY, changed ones (overwrite policy) updated from a staging table, the rest
        are duplicates. When the spans hold far more points than the upload, staging and one
        INSERT ... ON CONFLICT is cheaper than reading them.
        """
        series, start, counts = np.unique(ids, return_index=True, return_counts=True)
        lo, hi = ts_us[start], ts_us[start + counts - 1]
        if _points_in_spans(stats, series, lo, hi) > SPAN_READ_FACTOR * len(ids) + SPAN_READ_SLACK:
            return self._merge_on_conflict(ids, ts_us, values)
        stored = points_read_spans(series_ids=series, lo_us=lo, hi_us=hi)
        exists = np.zeros(len(ids), dtype=bool)
        changed = np.zeros(len(ids), dtype=bool)
        for series_id, first, count in zip(series.tolist(), start.tolist(), counts.tolist(), strict=True):
            old_ts, old_values = stored.get(series_id, (np.empty(0, np.int64), np.empty(0)))
            part = slice(first, first + count)
            pos = np.minimum(np.searchsorted(old_ts, ts_us[part]), max(len(old_ts) - 1, 0))
            hit = (old_ts[pos] == ts_us[part]) if len(old_ts) else np.zeros(count, dtype=bool)
            exists[part] = hit
            if self.keep_last and len(old_ts):
                changed[part] = hit & (old_values[pos] != values[part])
        if (~exists).any():
            self._append(ids[~exists], ts_us[~exists], values[~exists])
        if changed.any():
            self._update(ids[changed], ts_us[changed], values[changed])

    def _staged(self, ids: np.ndarray, ts_us: np.ndarray, values: np.ndarray) -> None:
        with connection.cursor() as cursor:
            if not self._staging_ready:
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} "
                    "(series_id bigint, ts timestamptz, value float8) ON COMMIT DROP"
                )
                self._staging_ready = True
            cursor.execute(f"TRUNCATE {STAGE_TABLE}")
        _copy_points(STAGE_TABLE, ids, ts_us, values)

    def _update(self, ids: np.ndarray, ts_us: np.ndarray, values: np.ndarray) -> None:
        """New values for stored points (overwrite policy), in one UPDATE from the staging table."""
        self._staged(ids, ts_us, values)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {POINT_TABLE} p SET value = s.value FROM {STAGE_TABLE} s "
                "WHERE p.series_id = s.series_id AND p.ts = s.ts"
            )
            self.result.updated += cursor.rowcount
        series, first, counts = np.unique(ids, return_index=True, return_counts=True)
        for series_id, a, n in zip(series.tolist(), first.tolist(), counts.tolist(), strict=True):
            self.result.touch(series_id, utc_from_us(ts_us[a]), utc_from_us(ts_us[a + n - 1]))

    def _merge_on_conflict(self, ids: np.ndarray, ts_us: np.ndarray, values: np.ndarray) -> None:
        """Staged, then merged by the duplicate policy in one INSERT ... ON CONFLICT."""
        self._staged(ids, ts_us, values)
        with connection.cursor() as cursor:
            cursor.execute(_MERGE_OVERWRITE if self.keep_last else _MERGE_KEEP_FIRST)
            for series_id, inserted, updated, first_ts, last_ts in cursor.fetchall():
                self.result.inserted += inserted
                self.result.updated += updated
                self.result.touch(series_id, first_ts, last_ts)


def _points_in_spans(stats: np.ndarray, series: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Estimated stored points in each series' [lo, hi], assuming its points spread evenly."""
    row = stats[np.searchsorted(stats["id"], series)]
    span = np.maximum(row["last"] - row["first"], 1).astype(float)
    return float(np.sum(row["count"] * np.minimum((hi - lo) / span, 1.0) + 1))


def _unique_keys(ids: np.ndarray, ts_us: np.ndarray, *, keep_last: bool) -> np.ndarray:
    """Mask keeping one point per (series, ts) of key-sorted arrays: the first, or the last if keep_last."""
    same_as_next = (ids[1:] == ids[:-1]) & (ts_us[1:] == ts_us[:-1])
    if keep_last:
        return np.append(~same_as_next, True)
    return np.insert(~same_as_next, 0, True)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_from_us(us) -> datetime:
    """An aware datetime from µs since the epoch, exact (no float rounding)."""
    return EPOCH + timedelta(microseconds=int(us))


def us_from_utc(ts) -> int:
    """µs since the epoch of an aware datetime or pandas Timestamp, exact (no float rounding)."""
    if isinstance(ts, pd.Timestamp):
        return int(ts.value // 1000)
    return (ts - EPOCH) // timedelta(microseconds=1)


def timestamps_from_us(ts_us: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(ts_us, unit="us", utc=True)


def series_get_or_create_many(*, dataset: Dataset, keys: list[SeriesKey]) -> dict[SeriesKey, int]:
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
# moves the series' counters in the same statement.
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

# keep_first: a stored value wins over a new one.
_MERGE_KEEP_FIRST = f"""
WITH merged AS (
    INSERT INTO {POINT_TABLE} (series_id, ts, value)
    SELECT series_id, ts, value FROM {STAGE_TABLE}
    ON CONFLICT (series_id, ts) DO NOTHING
    RETURNING series_id, ts, true AS is_new
), {_COUNTERS}
"""

# overwrite: the new value wins; an identical value is a duplicate, not an update.
_MERGE_OVERWRITE = f"""
WITH merged AS (
    INSERT INTO {POINT_TABLE} AS p (series_id, ts, value)
    SELECT series_id, ts, value FROM {STAGE_TABLE}
    ON CONFLICT (series_id, ts) DO UPDATE SET value = EXCLUDED.value WHERE p.value IS DISTINCT FROM EXCLUDED.value
    RETURNING series_id, ts, (xmax = 0) AS is_new
), {_COUNTERS}
"""


# --- reading ------------------------------------------------------------------------


@dataclass
class PointArrays:
    """Points of several series as parallel arrays, ordered by (series, ts)."""

    series_id: np.ndarray  # int64
    ts_us: np.ndarray  # int64 µs since the Unix epoch
    value: np.ndarray  # float64

    def split(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """{series id: (ts_us, values)} as views, without copying."""
        if not len(self.series_id):
            return {}
        bounds = np.flatnonzero(np.diff(self.series_id)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(self.series_id)]])
        return {
            int(self.series_id[a]): (self.ts_us[a:b], self.value[a:b])
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
        }


def points_read(*, series_ids: list[int], start: datetime | None = None, end: datetime | None = None) -> PointArrays:
    """Points of the series in [start, end), ordered by (series, ts)."""
    return points_read_around(series_ids=series_ids, starts=[start] * len(series_ids), end=end, history=0)


def points_read_around(
    *, series_ids: list[int], starts: list[datetime | None], end: datetime | None = None, history: int = 0
) -> PointArrays:
    """Per series: its last `history` points before its start, then every point in [start, end).

    One query for all the series. PostgreSQL packs each series' points into one binary string
    (timestamptz_send || float8send, ordered by ts), which numpy reads without per-row Python.
    """
    query = f"""
        SELECT s.id, (
            SELECT string_agg(timestamptz_send(p.ts) || float8send(p.value), ''::bytea ORDER BY p.ts)
            FROM (
                (SELECT ts, value FROM {POINT_TABLE}
                 WHERE series_id = s.id AND ts < coalesce(s.lo, '-infinity') ORDER BY ts DESC LIMIT %s)
                UNION ALL
                (SELECT ts, value FROM {POINT_TABLE}
                 WHERE series_id = s.id AND ts >= coalesce(s.lo, '-infinity')
                   AND ts < coalesce(%s::timestamptz, 'infinity'))
            ) p
        )
        FROM unnest(%s::bigint[], %s::timestamptz[]) AS s(id, lo)
        ORDER BY s.id
    """
    with connection.cursor() as cursor:
        cursor.execute(query, [history, end, list(series_ids), list(starts)])
        packed = [(series_id, np.frombuffer(blob, dtype=PACKED_POINT)) for series_id, blob in cursor.fetchall() if blob]
    if not packed:
        return PointArrays(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    rows = np.concatenate([points for _, points in packed])
    return PointArrays(
        series_id=np.repeat([series_id for series_id, _ in packed], [len(points) for _, points in packed]),
        ts_us=rows["ts"].astype(np.int64) + PG_EPOCH_OFFSET_US,
        value=rows["value"].astype(np.float64),
    )


def points_read_spans(
    *, series_ids: np.ndarray, lo_us: np.ndarray, hi_us: np.ndarray
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{series id: (ts µs, values)} of the stored points in each series' [lo, hi], in one query."""
    query = f"""
        SELECT s.id, (
            SELECT string_agg(timestamptz_send(p.ts) || float8send(p.value), ''::bytea ORDER BY p.ts)
            FROM {POINT_TABLE} p
            WHERE p.series_id = s.id
              AND p.ts BETWEEN timestamptz 'epoch' + s.lo * interval '1 microsecond'
                           AND timestamptz 'epoch' + s.hi * interval '1 microsecond'
        )
        FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS s(id, lo, hi)
    """
    with connection.cursor() as cursor:
        cursor.execute(query, [series_ids.tolist(), lo_us.tolist(), hi_us.tolist()])
        packed = {series_id: np.frombuffer(blob, dtype=PACKED_POINT) for series_id, blob in cursor if blob}
    return {
        series_id: (rows["ts"].astype(np.int64) + PG_EPOCH_OFFSET_US, rows["value"].astype(np.float64))
        for series_id, rows in packed.items()
    }


def points_read_windows(
    *, series_ids: list[int], starts: list[datetime], ends: list[datetime], before: int, after: int, most: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per window (in the order given): the `before` points before its start, at most `most` points in
    [start, end], and the `after` points after its end, as (ts µs, values). One query for all windows."""
    query = f"""
        SELECT (
            SELECT string_agg(timestamptz_send(p.ts) || float8send(p.value), ''::bytea ORDER BY p.ts)
            FROM (
                (SELECT ts, value FROM {POINT_TABLE} WHERE series_id = w.id AND ts < w.lo ORDER BY ts DESC LIMIT %s)
                UNION ALL
                (SELECT ts, value FROM {POINT_TABLE} WHERE series_id = w.id AND ts BETWEEN w.lo AND w.hi
                 ORDER BY ts LIMIT %s)
                UNION ALL
                (SELECT ts, value FROM {POINT_TABLE} WHERE series_id = w.id AND ts > w.hi ORDER BY ts LIMIT %s)
            ) p
        )
        FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[]) WITH ORDINALITY AS w(id, lo, hi, n)
        ORDER BY w.n
    """
    with connection.cursor() as cursor:
        cursor.execute(query, [before, most, after, list(series_ids), list(starts), list(ends)])
        packed = [np.frombuffer(blob or b"", dtype=PACKED_POINT) for (blob,) in cursor.fetchall()]
    return [(rows["ts"].astype(np.int64) + PG_EPOCH_OFFSET_US, rows["value"].astype(np.float64)) for rows in packed]


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
