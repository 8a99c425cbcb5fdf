"""Turn what users send (CSV, JSON rows, DataFrames) into validated columns, vectorised.

Two shapes are accepted for points:
- long: one point per row, columns `metric`, `ts`, `value`, optional `labels` (a JSON object or
  `key=value;key=value`); any other column is a label too (`host`, `region`, ...).
- wide: `ts` plus one column per metric; empty cells mean "no point" and are skipped.
The timestamp column may be called `ts`, `timestamp` or `time`. Timestamps are ISO 8601 (an offset is
honoured; no offset means UTC), epoch seconds, or epoch milliseconds (numbers of magnitude >= 1e11).

Rows are numbered from 1, counting data rows only (row 1 is line 2 of a CSV with a header).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.conf import settings

from common.exceptions import ApplicationError

TS_COLUMNS = ("ts", "timestamp", "time")
# Epoch numbers at or above this are milliseconds (1e11 seconds would be the year 5138).
EPOCH_MS_THRESHOLD = 1e11
# A series' metric and labels are one entry of a unique btree index, whose entries must stay under
# about 2.7 kB: the metric and labels JSON together are kept below this many UTF-8 bytes.
SERIES_KEY_MAX_BYTES = 2000


@dataclass(frozen=True)
class KeyLimits:
    """Limits on a series' name and labels, read from the settings once per chunk."""

    metric: int
    labels: int
    key: int
    value: int

    @classmethod
    def from_settings(cls) -> KeyLimits:
        return cls(
            metric=settings.INGEST_MAX_METRIC_LENGTH,
            labels=settings.INGEST_MAX_LABELS,
            key=settings.INGEST_MAX_LABEL_KEY_LENGTH,
            value=settings.INGEST_MAX_LABEL_VALUE_LENGTH,
        )


def ts_range_us() -> tuple[int, int]:
    """[first, last] µs since the epoch a stored timestamp may take (INGEST_MIN_YEAR .. INGEST_MAX_YEAR)."""
    first = (np.datetime64(f"{settings.INGEST_MIN_YEAR:04d}-01-01", "us") - np.datetime64(0, "us")).astype(np.int64)
    end = np.datetime64(f"{settings.INGEST_MAX_YEAR + 1:04d}-01-01", "us") - np.datetime64(0, "us")
    return int(first), int(end.astype(np.int64)) - 1


@dataclass
class RowErrors:
    """Rejected rows of one upload: an exact count and the first `limit` in full."""

    limit: int
    count: int = 0
    items: list[dict] = field(default_factory=list)

    def add(self, rows: np.ndarray, field_name: str, message: str, values=None) -> None:
        self.count += len(rows)
        room = self.limit - len(self.items)
        for i in range(min(room, len(rows))):
            item = {"row": int(rows[i]), "field": field_name, "message": message}
            if values is not None:
                item["value"] = _printable(values[i])
            self.items.append(item)

    def sorted_items(self) -> list[dict]:
        return sorted(self.items, key=lambda item: (item["row"], item["field"]))


SeriesKey = tuple[str, str]  # (metric, canonical labels JSON)


@dataclass
class PointColumns:
    """Validated points of one chunk: parallel arrays, one entry per accepted point."""

    series_code: np.ndarray  # int64 index into series_keys
    series_keys: list[SeriesKey]
    ts_us: np.ndarray  # int64 microseconds since the Unix epoch, UTC
    value: np.ndarray  # float64
    received: int  # points the chunk asked to store (valid + rejected)


def _printable(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value)
    return text if len(text) <= 100 else text[:97] + "..."


# --- reading ------------------------------------------------------------------


def read_csv_chunks(
    source, *, chunksize: int | None = None, kind: str = "points"
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Yield (first row number, DataFrame) from CSV bytes or a binary file.

    Numeric columns are parsed by pandas' C reader; a column holding any text stays text and is
    checked cell by cell later. Empty cells stay empty strings (no NaN guessing from "NA", "null").
    In long rows the metric and label columns are read as text, so a label keeps what was sent ("007").
    """
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    options = {"keep_default_na": False, "na_filter": False, "skipinitialspace": True}
    try:
        text = _text_columns(source, options) if kind == "points" else None
        reader = pd.read_csv(source, dtype=text, chunksize=chunksize, **options)
        chunks = [reader] if chunksize is None else reader
        first_row = 1
        for chunk in chunks:
            chunk.columns = [str(c).strip() for c in chunk.columns]
            yield first_row, chunk
            first_row += len(chunk)
    except pd.errors.EmptyDataError as exc:
        raise ApplicationError("The CSV is empty: a header row and at least one data row are needed.") from exc
    except pd.errors.ParserError as exc:
        raise ApplicationError(f"The CSV could not be parsed: {exc}", extra={"field": None}) from exc
    except UnicodeDecodeError as exc:
        raise ApplicationError(f"The CSV is not valid UTF-8 (byte {exc.start}).") from exc


def _text_columns(source, options: dict) -> dict | None:
    """Long rows' metric and label columns (every column but ts and value) by their header names."""
    if not source.seekable():
        return None
    start = source.tell()
    try:
        header = [str(c) for c in pd.read_csv(source, nrows=0, **options).columns]
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None  # the real read reports it
    finally:
        source.seek(start)
    names = [name.strip() for name in header]
    if "metric" not in names:
        return None
    return {raw: str for raw, name in zip(header, names, strict=True) if name not in ("value", *TS_COLUMNS)}


def frame_from_json(payload, *, kind: str = "points") -> tuple[pd.DataFrame, dict]:
    """JSON rows → (DataFrame, upload-level labels). Accepts a list of rows or {"points"|"rows"|"records": [...]}."""
    labels: dict = {}
    rows = payload
    if isinstance(payload, dict):
        labels = payload.get("labels") or {}
        if not isinstance(labels, dict):
            raise ApplicationError("'labels' must be an object.", extra={"field": "labels"})
        keys = [k for k in ("points", "rows", "records") if k in payload]
        if not keys:
            raise ApplicationError(f"Send a list of {kind} or an object with a 'points', 'rows' or 'records' list.")
        rows = payload[keys[0]]
    if not isinstance(rows, list):
        raise ApplicationError(f"Expected a list of {kind}.")
    if not rows:
        raise ApplicationError(f"The upload holds no {kind}.")
    not_objects = [i + 1 for i, row in enumerate(rows) if not isinstance(row, dict)]
    if not_objects:
        raise ApplicationError(
            f"Row {not_objects[0]} is not an object.", extra={"errors": [{"row": not_objects[0], "field": None}]}
        )
    frame = pd.DataFrame.from_records(rows)
    if kind != "points" or "metric" not in frame.columns:
        return frame, labels
    for column in frame.columns:
        # In long rows every column but ts and value is a name or a label: keep each cell as sent, not
        # as a float pandas made of an int because some rows lack the key (7 -> "7.0").
        if frame[column].dtype != object and column not in ("value", *TS_COLUMNS):
            frame[column] = pd.Series([row.get(column) for row in rows], index=frame.index, dtype=object)
    return frame, labels


def find_ts_column(frame: pd.DataFrame, *, required: bool = True) -> str | None:
    for name in TS_COLUMNS:
        if name in frame.columns:
            return name
    if required:
        raise ApplicationError(
            "Missing column 'ts' (or 'timestamp' / 'time').", extra={"field": "ts", "columns": list(frame.columns)}
        )
    return None


# --- cell parsing ---------------------------------------------------------------


def _blank(column: pd.Series) -> np.ndarray:
    if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
        return (column.isna() | (column.astype(str).str.strip() == "")).to_numpy()
    return column.isna().to_numpy()


def parse_timestamps(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 µs since epoch, bad mask). ISO 8601 first; what fails is tried as epoch s / ms."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        return _epoch_to_us(column.to_numpy(dtype=float))
    text = column.astype(str)
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    us = parsed.to_numpy(dtype="datetime64[us]").astype(np.int64, copy=True)
    bad = parsed.isna().to_numpy().copy()
    if bad.any():
        retry = np.flatnonzero(bad)
        numbers = pd.to_numeric(text.iloc[retry], errors="coerce").to_numpy(dtype=float)
        epoch_us, epoch_bad = _epoch_to_us(numbers)
        us[retry] = epoch_us
        bad[retry] = epoch_bad
    return _in_range(us, bad)


def _in_range(us: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An offset can take an ISO timestamp past year 9999 or before year 1: outside the range is bad."""
    first, last = ts_range_us()
    bad = bad | (us < first) | (us > last)
    us[bad] = 0
    return us, bad


def _epoch_to_us(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bad = ~np.isfinite(numbers)
    seconds = np.where(np.abs(numbers) >= EPOCH_MS_THRESHOLD, numbers / 1000.0, numbers)
    # PostgreSQL's timestamptz reaches year 294276; keep to a sane range instead.
    bad |= (seconds < -62135596800) | (seconds > 253402300799)  # 0001-01-01 .. 9999-12-31
    us = np.where(bad, 0, np.round(np.nan_to_num(seconds) * 1e6)).astype(np.int64)
    return _in_range(us, bad)


def parse_values(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, bad mask). Blank, non-numeric and non-finite values are bad."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return np.zeros(len(column)), np.ones(len(column), dtype=bool)
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype=float)
    else:
        as_text = column.map(lambda v: v if not isinstance(v, bool) else "bool") if column.dtype == object else column
        values = pd.to_numeric(as_text, errors="coerce").to_numpy(dtype=float)
    return values, ~np.isfinite(values)


def parse_labels_text(text) -> dict:
    """A labels cell: a JSON object, or `key=value` pairs separated by ';' (or ',')."""
    if isinstance(text, dict):
        labels = text
    elif _missing(text):
        return {}
    else:
        text = str(text).strip()
        if text.startswith("{"):
            try:
                labels = json.loads(text)
            except RecursionError as exc:
                raise ValueError("labels nested too deep") from exc
            if not isinstance(labels, dict):
                raise ValueError("labels must be an object")
        else:
            labels = {}
            separator = ";" if ";" in text else ","
            for pair in text.split(separator):
                key, sep, value = pair.partition("=")
                if not sep or not key.strip():
                    raise ValueError(f"expected key=value, got {pair!r}")
                labels[key.strip()] = value.strip()
    if any(isinstance(v, dict | list) for v in labels.values()):
        raise ValueError("label values must be strings or numbers")
    return {str(k): label_text(v) for k, v in labels.items() if not _missing(v)}


def canonical_labels(labels: dict) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


# --- points -------------------------------------------------------------------------


def point_columns(
    frame: pd.DataFrame, *, first_row: int, upload_labels: dict, errors: RowErrors, latest_us: int | None = None
) -> PointColumns:
    """Validate one chunk of long or wide rows; rejected cells go to `errors`.

    `latest_us`: timestamps after it (µs since the epoch) are refused: a point dated in the future would
    move its series' cursor past every normal point that follows.
    """
    if frame.empty:
        raise ApplicationError("The upload holds no rows.")
    ts_name = find_ts_column(frame)
    ts_us, ts_bad = parse_timestamps(frame[ts_name])
    rows = np.arange(first_row, first_row + len(frame))
    if ts_bad.any():
        errors.add(
            rows[ts_bad],
            ts_name,
            "not a timestamp (ISO 8601, epoch seconds or epoch milliseconds) "
            "between INGEST_MIN_YEAR and INGEST_MAX_YEAR",
            frame[ts_name].to_numpy()[ts_bad],
        )
    if latest_us is not None:
        future = ~ts_bad & (ts_us > latest_us)
        if future.any():
            errors.add(rows[future], ts_name, "in the future (beyond INGEST_MAX_FUTURE_SECONDS from now)",
                       frame[ts_name].to_numpy()[future])  # fmt: skip
            ts_bad = ts_bad | future
    if "metric" in frame.columns:
        return _long_points(frame, ts_name, ts_us, ts_bad, rows, upload_labels, errors)
    if "value" in frame.columns:
        raise ApplicationError(
            "Missing column 'metric': long rows need metric, ts and value "
            "(or send wide rows: ts plus one column per metric).",
            extra={"field": "metric"},
        )
    return _wide_points(frame, ts_name, ts_us, ts_bad, rows, upload_labels, errors)


def _long_points(frame, ts_name, ts_us, ts_bad, rows, upload_labels, errors) -> PointColumns:
    if "value" not in frame.columns:
        raise ApplicationError("Missing column 'value'.", extra={"field": "value"})
    values, value_bad = parse_values(frame["value"])
    if value_bad.any():
        errors.add(rows[value_bad], "value", "not a finite number", frame["value"].to_numpy()[value_bad])
    codes, keys, key_bad = _long_series_keys(frame, ts_name, upload_labels, rows, errors)
    ok = ~(ts_bad | value_bad | key_bad)
    return PointColumns(codes[ok], keys, ts_us[ok], values[ok], received=len(frame))


def _long_series_keys(frame: pd.DataFrame, ts_name: str, upload_labels: dict, rows, errors: RowErrors):
    """(series code per row, series keys, bad-row mask), validating each distinct combination once."""
    label_columns = [c for c in frame.columns if c not in ("metric", "value") and c != ts_name]
    columns = ["metric", *label_columns]
    group = np.zeros(len(frame), dtype=np.int64)
    for column in columns:
        # A missing cell is a value of its own (not -1), and re-coding after each column keeps the
        # combined code below the row count, however many label columns there are.
        column_codes, column_uniques = pd.factorize(_hashable(frame[column]), use_na_sentinel=False)
        group, _ = pd.factorize(group * len(column_uniques) + column_codes)
    combos, first_rows = np.unique(group, return_index=True)
    cells = {column: frame[column].to_numpy()[first_rows] for column in columns}
    key_index: dict[SeriesKey, int] = {}
    limits = KeyLimits.from_settings()
    combo_key = np.zeros(len(combos), dtype=np.int64)
    combo_problem: dict[tuple[str, str], list[int]] = {}
    for i in range(len(combos)):
        key, problem = _series_key({column: cells[column][i] for column in columns}, upload_labels, limits)
        if problem is None:
            combo_key[i] = key_index.setdefault(key, len(key_index))
        else:
            combo_problem.setdefault(problem, []).append(i)
    bad = np.zeros(len(frame), dtype=bool)
    for (field_name, message), combo_ids in combo_problem.items():
        hit = np.isin(group, combo_ids)
        errors.add(rows[hit], field_name, message)
        bad |= hit
    return combo_key[group], list(key_index), bad


def _hashable(cells: pd.Series) -> pd.Series:
    """JSON objects and lists as canonical text, so they can be counted (they are checked later)."""
    if cells.dtype != object:
        return cells
    return cells.map(lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v)


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == ""


def label_text(value) -> str:
    """A label value as stored: text as sent; JSON true/false as "true"/"false"; numbers as written."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def _series_key(cells: dict, upload_labels: dict, limits: KeyLimits) -> tuple[SeriesKey | None, tuple[str, str] | None]:
    """Labels, lowest precedence first: label columns, the row's `labels` cell, the upload's labels."""
    metric = cells.pop("metric")
    if _missing(metric) or isinstance(metric, dict | list):
        return None, ("metric", f"metric name must be 1-{limits.metric} characters")
    problem = _name_problem(str(metric).strip(), limits.metric, "metric name")
    if problem:
        return None, ("metric", problem)
    raw_labels = cells.pop("labels", None)
    if any(isinstance(value, dict | list) for value in cells.values()):
        return None, ("labels", "label values must be strings or numbers")
    labels = {name: label_text(value) for name, value in cells.items() if not _missing(value)}
    try:
        labels.update(parse_labels_text(raw_labels))
    except ValueError:
        return None, ("labels", "labels must be a JSON object of strings, or key=value;key=value")
    labels.update(upload_labels)
    key = (str(metric).strip(), canonical_labels(labels))
    problem = labels_problem(labels, limits) or _key_size_problem(key)
    if problem:
        return None, ("labels", problem)
    return key, None


def _name_problem(name: str, limit: int, what: str) -> str | None:
    if not name or len(name) > limit:
        return f"{what} must be 1-{limit} characters"
    if "\x00" in name:
        return f"{what} must not contain a NUL character"
    return None


def labels_problem(labels: dict, limits: KeyLimits) -> str | None:
    """Why a series' labels cannot be stored (count, key and value length, NUL), or None."""
    if len(labels) > limits.labels:
        return f"at most {limits.labels} labels (INGEST_MAX_LABELS)"
    for key, value in labels.items():
        problem = _name_problem(key, limits.key, "a label key")
        if problem:
            return f"{problem} (INGEST_MAX_LABEL_KEY_LENGTH)" if "characters" in problem else problem
        if len(value) > limits.value:
            return f"label values must be at most {limits.value} characters (INGEST_MAX_LABEL_VALUE_LENGTH)"
        if "\x00" in value:
            return "a label value must not contain a NUL character"
    return None


def _key_size_problem(key: SeriesKey) -> str | None:
    # One message for every size: rows are grouped by message, so it must not vary per series.
    if len(key[0].encode()) + len(key[1].encode()) > SERIES_KEY_MAX_BYTES:
        return f"the metric and labels together must take at most {SERIES_KEY_MAX_BYTES} bytes"
    return None


def _wide_points(frame, ts_name, ts_us, ts_bad, rows, upload_labels, errors) -> PointColumns:
    metrics = [str(c) for c in frame.columns if c != ts_name]
    if not metrics:
        raise ApplicationError("No metric columns: wide rows need ts plus one column per metric.")
    limits = KeyLimits.from_settings()
    for metric in metrics:
        problem = _name_problem(metric, limits.metric, "metric column names")
        if problem:
            raise ApplicationError(f"{problem.capitalize()}.", extra={"field": "metric"})
    labels_text = canonical_labels(upload_labels)
    longest = max(metrics, key=lambda m: len(m.encode()))
    problem = labels_problem(upload_labels, limits) or _key_size_problem((longest, labels_text))
    if problem:
        raise ApplicationError(f"Bad labels: {problem}.", extra={"field": "labels"})
    codes, ts_parts, value_parts = [], [], []
    received = 0
    for code, metric in enumerate(metrics):
        column = frame[metric]
        present = ~_blank(column)
        values, bad = parse_values(column)
        bad &= present
        received += int(present.sum())
        if bad.any():
            errors.add(rows[bad], metric, "not a finite number", column.to_numpy()[bad])
        ok = present & ~bad & ~ts_bad
        codes.append(np.full(int(ok.sum()), code, dtype=np.int64))
        ts_parts.append(ts_us[ok])
        value_parts.append(values[ok])
    return PointColumns(
        series_code=np.concatenate(codes),
        series_keys=[(metric, labels_text) for metric in metrics],
        ts_us=np.concatenate(ts_parts),
        value=np.concatenate(value_parts),
        received=received,
    )
