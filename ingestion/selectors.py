"""Reads for ingestion: series lists, points (raw or resampled in PostgreSQL) and dataset summaries.

Everything here is one or two set-based queries. Points are never loaded into Python to be counted,
binned or aggregated: PostgreSQL does that with `date_bin` and aggregates over the (series_id, ts) key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count, Max, Min, QuerySet, Sum

from common.exceptions import ApplicationError
from ingestion.models import Dataset, DatasetKind, Point, Record, Series
from teams.selectors import team_ids_for_user

DEFAULT_POINTS_LIMIT = 10_000
MAX_POINTS_LIMIT = 100_000
# Buckets are aligned to this origin, so the same resample gives the same buckets whatever the range.
RESAMPLE_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)

# JSON has no NaN or infinity: such values come back as null.
_FINITE = "CASE WHEN {expr} IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8) THEN NULL ELSE {expr} END"
AGGREGATES = {
    "mean": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "sum": "sum(value)",
    "count": "count(*)::float8",
    "first": "(array_agg(value ORDER BY ts))[1]",
    "last": "(array_agg(value ORDER BY ts DESC))[1]",
    "median": "percentile_cont(0.5) WITHIN GROUP (ORDER BY value)",
}

# Frequency inference: median spacing of the latest points of the largest series.
FREQUENCY_SERIES = 3
FREQUENCY_POINTS = 1000
# Feature keys of a table dataset are read from its most recent records only.
FEATURE_KEYS_SAMPLE = 10_000

_EPOCH_RE = re.compile(r"^[+-]?\d+(\.\d+)?$")
# A "+" in an unencoded query string arrives as a space: "2024-01-01T00:00:00 02:00".
_SPACE_OFFSET_RE = re.compile(r"(T[\d:.]+) (\d{2}(:?\d{2})?)$")
_LABEL_RE = re.compile(r"^(?P<key>[^:=]+)[:=](?P<value>.*)$")
_ALIAS_UNITS = [(86400.0, "D"), (3600.0, "h"), (60.0, "min"), (1.0, "s"), (0.001, "ms"), (0.000001, "us")]


@dataclass(frozen=True)
class SeriesPoints:
    """Points of one series, raw or one row per bucket. `next_from` is where to continue when truncated."""

    series_id: int
    start: datetime | None
    end: datetime | None
    resample: str | None
    resample_seconds: float | None
    agg: str | None
    limit: int
    points: list[tuple[datetime, float | None]]
    truncated: bool
    next_from: datetime | None


# --- Parsing ---------------------------------------------------------------


def parse_timestamp(value: datetime | str | float | int | None, *, name: str = "timestamp") -> datetime | None:
    """ISO 8601 (with or without offset; naive means UTC) or epoch seconds -> aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) or _EPOCH_RE.match(str(value).strip()):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ApplicationError(f"{name}: epoch seconds {value} are out of range.") from exc
    text = _SPACE_OFFSET_RE.sub(r"\1+\2", str(value).strip())
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ApplicationError(
            f"{name}: {value!r} is not a timestamp; use ISO 8601 (2024-05-01T12:00:00+00:00) or epoch seconds."
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_resample(value: str | None) -> timedelta | None:
    """A pandas-style fixed offset ("30s", "5min", "1h", "1D") -> timedelta; months and years are not fixed."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if _EPOCH_RE.match(text):
        raise ApplicationError(f"resample: {value!r} has no unit; write it like 30s, 5min, 1h or 1D.")
    try:
        delta = pd.to_timedelta(text)
    except (ValueError, TypeError) as exc:
        raise ApplicationError(f"resample: {value!r} is not a fixed interval such as 30s, 5min, 1h or 1D.") from exc
    if pd.isna(delta) or delta < pd.Timedelta(microseconds=1):
        raise ApplicationError(f"resample: {value!r} must be a positive interval of at least 1 microsecond.")
    return delta.to_pytimedelta()


def parse_limit(value: int | str | None, *, default: int = DEFAULT_POINTS_LIMIT) -> int:
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except (TypeError, ValueError) as exc:
        raise ApplicationError(f"limit: {value!r} is not a whole number.") from exc
    if not 1 <= limit <= MAX_POINTS_LIMIT:
        raise ApplicationError(f"limit must be between 1 and {MAX_POINTS_LIMIT}.")
    return limit


def parse_label_filters(values: list[str]) -> dict[str, str]:
    """["host:a", "region=eu"] -> {"host": "a", "region": "eu"}; the first ":" or "=" separates key and value."""
    labels: dict[str, str] = {}
    for item in values:
        match = _LABEL_RE.match(item)
        if not match:
            raise ApplicationError(f"label: {item!r} must be written key:value, e.g. label=host:a.")
        labels[match["key"]] = match["value"]
    return labels


def frequency_alias(seconds: float | None) -> str | None:
    """300 -> "5min", 3600 -> "1h", 86400 -> "1D", 90 -> "90s": the largest unit that divides evenly."""
    if seconds is None or seconds <= 0:
        return None
    for size, unit in _ALIAS_UNITS:
        count = seconds / size
        if count >= 1 and math.isclose(count, round(count), rel_tol=0, abs_tol=1e-6):
            return f"{round(count)}{unit}"
    return None


# --- Series and points -----------------------------------------------------


def series_filter(
    queryset: QuerySet[Series],
    *,
    dataset_id: int | None = None,
    metric: str | None = None,
    labels: dict | None = None,
) -> QuerySet[Series]:
    if dataset_id is not None:
        queryset = queryset.filter(dataset_id=dataset_id)
    if metric:
        queryset = queryset.filter(metric=metric)
    if labels:
        queryset = queryset.filter(labels__contains=labels)
    return queryset


def series_list(
    *,
    user: AbstractBaseUser,
    dataset_id: int | None = None,
    metric: str | None = None,
    labels: dict | None = None,
) -> QuerySet[Series]:
    """The series of the user's teams, filtered by dataset, metric and labels (JSONB containment)."""
    queryset = Series.objects.select_related("dataset").filter(dataset__team__in=team_ids_for_user(user=user))
    return series_filter(queryset, dataset_id=dataset_id, metric=metric, labels=labels)


def series_points(
    *,
    series: Series,
    start: datetime | str | float | None = None,
    end: datetime | str | float | None = None,
    resample: str | None = None,
    agg: str | None = "mean",
    limit: int | str | None = DEFAULT_POINTS_LIMIT,
) -> SeriesPoints:
    """Points with start <= ts < end, oldest first: raw, or one row per `resample` bucket aggregated by `agg`.

    Buckets are `date_bin(resample, ts, 1970-01-01)`, labelled by their start. At most `limit` rows come back;
    when there are more, `truncated` is set and `next_from` is the start to ask for next.
    """
    start_ts = parse_timestamp(start, name="from")
    end_ts = parse_timestamp(end, name="to")
    if start_ts and end_ts and start_ts > end_ts:
        raise ApplicationError(f"from ({start_ts.isoformat()}) is after to ({end_ts.isoformat()}).")
    interval = parse_resample(resample)
    agg = agg or "mean"
    if agg not in AGGREGATES:
        raise ApplicationError(f"agg: {agg!r} is not one of {', '.join(AGGREGATES)}.")
    row_limit = parse_limit(limit)

    if interval is None:
        rows, truncated, next_from = _raw_points(series.pk, start_ts, end_ts, row_limit)
    else:
        rows, truncated, next_from = _resampled_points(series.pk, start_ts, end_ts, interval, agg, row_limit)
    return SeriesPoints(
        series_id=series.pk,
        start=start_ts,
        end=end_ts,
        resample=resample if interval is not None else None,
        resample_seconds=interval.total_seconds() if interval is not None else None,
        agg=agg if interval is not None else None,
        limit=row_limit,
        points=rows,
        truncated=truncated,
        next_from=next_from,
    )


_Rows = list[tuple[datetime, float | None]]


def _raw_points(
    series_id: int, start: datetime | None, end: datetime | None, limit: int
) -> tuple[_Rows, bool, datetime | None]:
    where, params = _range_sql(series_id, start, end)
    sql = f"SELECT ts, {_FINITE.format(expr='value')} FROM {Point._meta.db_table} WHERE {where} ORDER BY ts LIMIT %s"
    rows = _fetchall(sql, [*params, limit + 1])
    if len(rows) > limit:
        return rows[:limit], True, rows[limit][0]
    return rows, False, None


def _resampled_points(
    series_id: int, start: datetime | None, end: datetime | None, interval: timedelta, agg: str, limit: int
) -> tuple[_Rows, bool, datetime | None]:
    """Aggregate only the span that can fill `limit` + 1 buckets, so a long series is not binned in full."""
    first = start or _next_ts(series_id, None, end)
    if first is None:
        return [], False, None
    try:
        window_end = _bucket_start(first, interval) + interval * (limit + 1)
    except OverflowError:
        window_end = None
    scan_end = min(end, window_end) if end and window_end else end or window_end
    where, params = _range_sql(series_id, start, scan_end)
    sql = (
        f"SELECT date_bin(%s::interval, ts, %s::timestamptz) AS bucket, {_FINITE.format(expr=AGGREGATES[agg])} "
        f"FROM {Point._meta.db_table} WHERE {where} GROUP BY bucket ORDER BY bucket LIMIT %s"
    )
    rows = _fetchall(sql, [interval, RESAMPLE_ORIGIN, *params, limit + 1])
    if len(rows) > limit:
        return rows[:limit], True, rows[limit][0]
    if window_end is not None and scan_end == window_end:
        # The window held empty buckets: say where the next data starts, if there is any.
        following = _next_ts(series_id, window_end, end)
        if following is not None:
            return rows, True, _bucket_start(following, interval)
    return rows, False, None


def _range_sql(series_id: int, start: datetime | None, end: datetime | None) -> tuple[str, list]:
    where = ["series_id = %s"]
    params: list = [series_id]
    if start is not None:
        where.append("ts >= %s")
        params.append(start)
    if end is not None:
        where.append("ts < %s")
        params.append(end)
    return " AND ".join(where), params


def _next_ts(series_id: int, start: datetime | None, end: datetime | None) -> datetime | None:
    """The first point's time in [start, end): one step down the primary key."""
    where, params = _range_sql(series_id, start, end)
    rows = _fetchall(f"SELECT ts FROM {Point._meta.db_table} WHERE {where} ORDER BY ts LIMIT 1", params)
    return rows[0][0] if rows else None


def _bucket_start(ts: datetime, interval: timedelta) -> datetime:
    """Python's twin of date_bin(interval, ts, RESAMPLE_ORIGIN)."""
    return RESAMPLE_ORIGIN + interval * ((ts - RESAMPLE_ORIGIN) // interval)


def _fetchall(sql: str, params: list) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def series_recent_points(*, series: Series, limit: int = 2000) -> list[tuple[datetime, float | None]]:
    """The latest `limit` points of a series, oldest first (read backwards along the primary key)."""
    table = Point._meta.db_table
    sql = (
        f"SELECT ts, {_FINITE.format(expr='value')} FROM "
        f"(SELECT ts, value FROM {table} WHERE series_id = %s ORDER BY ts DESC LIMIT %s) recent ORDER BY ts"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [series.pk, limit])
        return cursor.fetchall()


# --- Dataset summary -------------------------------------------------------


def dataset_summary(*, dataset: Dataset) -> dict:
    """Counts and time range from the series counters, the inferred frequency, and for tables the records."""
    totals = Series.objects.filter(dataset=dataset).aggregate(
        series_count=Count("id"),
        metric_count=Count("metric", distinct=True),
        point_count=Sum("point_count"),
        first_ts=Min("first_ts"),
        last_ts=Max("last_ts"),
    )
    seconds = dataset_frequency_seconds(dataset=dataset)
    summary = {
        "dataset": dataset.pk,
        "name": dataset.name,
        "kind": dataset.kind,
        "series_count": totals["series_count"],
        "metric_count": totals["metric_count"],
        "point_count": totals["point_count"] or 0,
        "first_ts": totals["first_ts"],
        "last_ts": totals["last_ts"],
        "frequency": frequency_alias(seconds),
        "frequency_seconds": seconds,
        "record_count": None,
        "records_first_ts": None,
        "records_last_ts": None,
        "feature_keys": None,
        "feature_types": None,
    }
    if dataset.kind == DatasetKind.TABLE:
        summary.update(_records_summary(dataset=dataset))
    return summary


def dataset_frequency_seconds(*, dataset: Dataset) -> float | None:
    """Median spacing, in seconds, of the latest points of the dataset's largest series; None if unknown."""
    sql = f"""
        WITH top AS (
            SELECT id FROM {Series._meta.db_table}
            WHERE dataset_id = %s AND point_count > 1
            ORDER BY point_count DESC, id LIMIT %s
        ), recent AS (
            SELECT p.series_id, p.ts FROM top CROSS JOIN LATERAL (
                SELECT series_id, ts FROM {Point._meta.db_table}
                WHERE series_id = top.id ORDER BY ts DESC LIMIT %s
            ) p
        ), gaps AS (
            SELECT EXTRACT(EPOCH FROM ts - lag(ts) OVER (PARTITION BY series_id ORDER BY ts))::float8 AS gap
            FROM recent
        )
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) FROM gaps WHERE gap > 0
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [dataset.pk, FREQUENCY_SERIES, FREQUENCY_POINTS])
        (seconds,) = cursor.fetchone()
    if seconds is None:
        return None
    # Jitter of a few milliseconds should not turn "5min" into "300001ms".
    return float(round(seconds)) if seconds >= 1 else round(seconds, 6)


def _records_summary(*, dataset: Dataset) -> dict:
    totals = Record.objects.filter(dataset=dataset).aggregate(
        record_count=Count("id"), records_first_ts=Min("ts"), records_last_ts=Max("ts")
    )
    sql = f"""
        SELECT f.key, array_agg(DISTINCT jsonb_typeof(f.value) ORDER BY jsonb_typeof(f.value))
        FROM (
            SELECT features FROM {Record._meta.db_table} WHERE dataset_id = %s ORDER BY id DESC LIMIT %s
        ) recent CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(recent.features) = 'object'
                                                    THEN recent.features ELSE '{{}}'::jsonb END) f
        GROUP BY f.key ORDER BY f.key
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [dataset.pk, FEATURE_KEYS_SAMPLE])
        keys = cursor.fetchall()
    return {
        **totals,
        "feature_keys": [key for key, _ in keys],
        "feature_types": {key: types for key, types in keys},
    }
