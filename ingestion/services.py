"""Writes of the ingestion app: datasets and uploads of points and records.

Every upload becomes an IngestBatch first, so its outcome is recorded whatever happens. The data
itself is loaded in one transaction: mode `strict` stores all rows or none, mode `partial` stores
the valid rows and reports each rejected one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import DataError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from common.exceptions import ApplicationError
from common.tasks import send_or_defer
from ingestion import signals
from ingestion.bulk import LoadResult, PointLoader, records_merge
from ingestion.models import Dataset, DatasetKind, IngestBatch, IngestMode, IngestSource, IngestStatus
from ingestion.parsers import (
    RowErrors,
    find_ts_column,
    frame_from_json,
    parse_timestamps,
    point_columns,
    read_csv_chunks,
)

logger = logging.getLogger(__name__)

CSV_TYPES = {"text/csv", "application/csv", "text/plain"}
JSON_TYPES = {"application/json"}
# One chunk: (number of its first row, rows, labels applied to every row of the upload)
Chunk = tuple[int, pd.DataFrame, dict]


class _Rejected(Exception):
    """Internal: roll the upload back; the batch says why."""


def dataset_create(*, team, name: str, kind: str = DatasetKind.TIMESERIES, user=None, **fields) -> Dataset:
    if Dataset.objects.filter(team=team, name=name).exists():
        raise ApplicationError(f"The team already has a dataset named {name!r}.", extra={"field": "name"})
    return Dataset.objects.create(team=team, name=name, kind=kind, created_by=user, **fields)


# --- entry points -----------------------------------------------------------------------


def ingest_points(
    *,
    dataset: Dataset,
    data: Any,
    source: str,
    user=None,
    mode: str = IngestMode.STRICT,
    content_type: str = "",
    filename: str = "",
    labels: dict | None = None,
    size_bytes: int = 0,
) -> IngestBatch:
    """Load points from CSV bytes, parsed JSON, or a DataFrame (long or wide rows, see parsers)."""
    batch = ingest_batch_start(
        dataset=dataset, target="points", source=source, user=user, mode=mode,
        content_type=content_type, filename=filename, size_bytes=size_bytes, labels=labels or {},
    )  # fmt: skip
    return _load_points(batch, lambda: _chunks(data, content_type=content_type, labels=labels))


def ingest_points_csv_file(
    *, dataset: Dataset, file, user=None, mode: str = IngestMode.STRICT, filename: str = "",
    labels: dict | None = None, chunksize: int = 500_000, progress=None,
) -> IngestBatch:  # fmt: skip
    """Stream a CSV file in chunks (memory stays flat); `progress(bytes_read)` is called per chunk."""
    batch = ingest_batch_start(
        dataset=dataset, target="points", source=IngestSource.CLI, user=user, mode=mode,
        content_type="text/csv", filename=filename, labels=labels or {},
    )  # fmt: skip

    def chunks() -> Iterator[Chunk]:
        for first_row, frame in read_csv_chunks(file, chunksize=chunksize):
            yield first_row, frame, labels or {}
            if progress is not None:
                progress(file.tell())

    return _load_points(batch, chunks)


def ingest_records(
    *,
    dataset: Dataset,
    data: Any,
    source: str,
    user=None,
    mode: str = IngestMode.STRICT,
    content_type: str = "",
    filename: str = "",
    size_bytes: int = 0,
) -> IngestBatch:
    """Load table rows: optional `external_id` and `ts`, any other field is a feature."""
    batch = ingest_batch_start(
        dataset=dataset, target="records", source=source, user=user, mode=mode,
        content_type=content_type, filename=filename, size_bytes=size_bytes,
    )  # fmt: skip
    return _load_records(batch, lambda: _chunks(data, content_type=content_type, labels=None, kind="records"))


def ingest_batch_start(*, dataset: Dataset, target: str, source: str, user=None, **fields) -> IngestBatch:
    if target == "points" and dataset.kind != DatasetKind.TIMESERIES:
        raise ApplicationError("This is a table dataset: send records, not points.", status=400)
    if target == "records" and dataset.kind != DatasetKind.TABLE:
        raise ApplicationError("This is a time series dataset: send points, not records.", status=400)
    return IngestBatch.objects.create(
        dataset=dataset, target=target, source=source, created_by=user, started_at=timezone.now(), **fields
    )


def ingest_batch_reject(*, batch: IngestBatch, message: str, errors: list | None = None) -> IngestBatch:
    """Record an upload refused before its rows were read (too large, wrong type, empty)."""
    _finish(batch, status=IngestStatus.REJECTED, message=message, errors=errors or [])
    return batch


# --- asynchronous uploads ---------------------------------------------------------------


def ingest_enqueue(
    *, dataset: Dataset, target: str, payload: bytes, content_type: str, source: str, user=None,
    mode: str = IngestMode.STRICT, filename: str = "", labels: dict | None = None,
) -> IngestBatch:  # fmt: skip
    """Keep the raw upload on the batch and let a worker load it (for uploads too big to wait for)."""
    from ingestion import tasks

    batch = ingest_batch_start(
        dataset=dataset, target=target, source=source, user=user, mode=mode, content_type=content_type,
        filename=filename, size_bytes=len(payload), labels=labels or {}, status=IngestStatus.QUEUED,
        payload=payload,
    )  # fmt: skip
    # The payload is in PostgreSQL now: with the broker down the upload is still queued, and
    # ingest_batches_requeue sends it once the broker is back.
    transaction.on_commit(lambda: send_or_defer(tasks.ingest_batch_process, (batch.pk,)))
    return batch


INTERRUPTED = "Interrupted: the server or the database went away during the upload; nothing was stored. Send it again."


def ingest_batches_requeue(*, queued_for: timedelta, processing_for: timedelta) -> dict[str, int]:
    """The periodic sweep. Sends again the batches queued longer than queued_for (their message was lost,
    or never sent while the broker was down). Of those processing longer than processing_for, queues the
    asynchronous ones again (their worker died; the load is one transaction, so nothing of them is stored)
    and fails the synchronous ones (their request died with the server or the database). The claim in
    ingest_batch_process makes a batch sent twice load once."""
    from ingestion import tasks

    now = timezone.now()
    stale = IngestBatch.objects.filter(status=IngestStatus.PROCESSING, started_at__lt=now - processing_for)
    revived = list(stale.filter(payload__isnull=False).values_list("pk", flat=True))
    IngestBatch.objects.filter(pk__in=revived, status=IngestStatus.PROCESSING).update(status=IngestStatus.QUEUED)
    failed = stale.filter(payload__isnull=True).update(
        status=IngestStatus.FAILED, finished_at=now, updated_at=now,
        message=INTERRUPTED,
    )  # fmt: skip
    waiting = IngestBatch.objects.filter(status=IngestStatus.QUEUED).filter(
        Q(updated_at__lt=now - queued_for) | Q(pk__in=revived)
    )
    sent = sum(send_or_defer(tasks.ingest_batch_process, (pk,)) for pk in waiting.values_list("pk", flat=True))
    return {"sent": sent, "revived": len(revived), "failed": failed}


def ingest_batch_process(*, batch_id: int) -> IngestBatch | None:
    """Load a queued batch. Claimed with a conditional update, so a redelivered task does nothing."""
    claimed = IngestBatch.objects.filter(pk=batch_id, status=IngestStatus.QUEUED).update(
        status=IngestStatus.PROCESSING, started_at=timezone.now()
    )
    if not claimed:
        return None
    batch = IngestBatch.objects.select_related("dataset").get(pk=batch_id)
    payload = bytes(batch.payload or b"")
    labels = batch.labels or None
    if batch.content_type in JSON_TYPES:
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            return ingest_batch_reject(batch=batch, message=f"The body is not valid JSON: {exc}")
    chunks = lambda: _chunks(payload, content_type=batch.content_type, labels=labels, kind=batch.target)  # noqa: E731
    try:
        batch = _load_points(batch, chunks) if batch.target == "points" else _load_records(batch, chunks)
    except OperationalError:
        # The database went away: give the batch back to the queue, so the task's retry claims it again.
        IngestBatch.objects.filter(pk=batch_id, status=IngestStatus.PROCESSING).update(status=IngestStatus.QUEUED)
        raise
    except Exception as exc:
        logger.exception("ingest batch failed", extra={"batch": batch_id})
        batch = ingest_batch_reject(batch=batch, message=f"The upload could not be processed ({_describe(exc)}).")
    IngestBatch.objects.filter(pk=batch_id).update(payload=None)
    batch.payload = None
    return batch


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


# --- loading --------------------------------------------------------------------------


def _chunks(data: Any, *, content_type: str, labels: dict | None, kind: str = "points") -> Iterator[Chunk]:
    if isinstance(data, pd.DataFrame):
        yield 1, data, labels or {}
    elif isinstance(data, bytes | bytearray | str):
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if not raw.strip():
            raise ApplicationError("The body is empty.")
        for first_row, frame in read_csv_chunks(raw, kind=kind):
            yield first_row, frame, labels or {}
    else:
        frame, upload_labels = frame_from_json(data, kind=kind)
        yield 1, frame, {**upload_labels, **(labels or {})}


def _load_points(batch: IngestBatch, chunks) -> IngestBatch:
    errors = RowErrors(limit=settings.INGEST_MAX_REPORTED_ERRORS)
    received = accepted = 0
    strict = batch.mode == IngestMode.STRICT
    try:
        with transaction.atomic():
            loader = PointLoader(batch.dataset)
            limited = batch.source in API_SOURCES  # files loaded from the command line stream any size
            series_keys: set = set()
            latest_us = int((timezone.now().timestamp() + settings.INGEST_MAX_FUTURE_SECONDS) * 1e6)
            for first_row, frame, labels in chunks():
                columns = point_columns(
                    frame, first_row=first_row, upload_labels=labels, errors=errors, latest_us=latest_us
                )
                received += columns.received
                accepted += len(columns.value)
                if limited:
                    series_keys.update(columns.series_keys)
                    _check_upload_size(received, len(series_keys))
                if not (strict and errors.count):  # a strict upload that failed only keeps validating
                    loader.load(columns)
            if (strict and errors.count) or not accepted:
                raise _Rejected
            result = loader.result
    except ApplicationError as exc:
        return _finish(batch, status=IngestStatus.REJECTED, message=exc.message, received=received,
                       rejected=received - accepted, errors=_structural_errors(exc, errors))  # fmt: skip
    except _Rejected:
        return _finish(batch, status=IngestStatus.REJECTED, message=_rejection_message(batch, errors, received),
                       received=received, rejected=received - accepted, errors=errors.sorted_items())  # fmt: skip
    except DataError as exc:  # a value the checks above let through and PostgreSQL refused
        logger.warning("ingest batch refused by the database", extra={"batch": batch.pk, "error": str(exc)})
        return _finish(batch, status=IngestStatus.REJECTED, message=f"The database refused a value ({_describe(exc)}).",
                       received=received, rejected=received, errors=errors.sorted_items())  # fmt: skip
    except (OperationalError, InterfaceError):
        _mark_interrupted(batch)
        raise
    _announce(batch, result)
    return _finish(
        batch, status=IngestStatus.PARTIAL if errors.count else IngestStatus.COMPLETED, received=received,
        rejected=received - accepted, errors=errors.sorted_items(), result=result,
    )  # fmt: skip


def _mark_interrupted(batch: IngestBatch) -> None:
    """The database went away mid-upload; its transaction is gone, so nothing of it is stored. Say so on
    the batch if the database is back already, else the sweep (ingest_batches_requeue) will."""
    if batch.payload is not None:
        return  # an asynchronous batch: ingest_batch_process queues it again for the task's retry
    try:
        connection.close()
        IngestBatch.objects.filter(pk=batch.pk, status=IngestStatus.PROCESSING).update(
            status=IngestStatus.FAILED, finished_at=timezone.now(), message=INTERRUPTED
        )
    except (OperationalError, InterfaceError):
        logger.warning("ingest batch interrupted; the sweep will mark it", extra={"batch": batch.pk})


def _load_records(batch: IngestBatch, chunks) -> IngestBatch:
    errors = RowErrors(limit=settings.INGEST_MAX_REPORTED_ERRORS)
    received = accepted = 0
    parts: list[tuple[list, list, list[str]]] = []
    try:
        with transaction.atomic():
            for first_row, frame, _labels in chunks():
                received += len(frame)
                _check_upload_size(received, 0)
                parts.append(_record_columns(frame, first_row=first_row, errors=errors))
                accepted += len(parts[-1][2])
            if (batch.mode == IngestMode.STRICT and errors.count) or not accepted:
                raise _Rejected
            result = records_merge(
                dataset=batch.dataset,
                external_ids=[e for p in parts for e in p[0]],
                ts=[t for p in parts for t in p[1]],
                features=[f for p in parts for f in p[2]],
            )
    except ApplicationError as exc:
        return _finish(batch, status=IngestStatus.REJECTED, message=exc.message, received=received,
                       rejected=received - accepted, errors=_structural_errors(exc, errors))  # fmt: skip
    except _Rejected:
        return _finish(batch, status=IngestStatus.REJECTED, message=_rejection_message(batch, errors, received),
                       received=received, rejected=received - accepted, errors=errors.sorted_items())  # fmt: skip
    except DataError as exc:  # a value the checks above let through and PostgreSQL refused
        logger.warning("ingest batch refused by the database", extra={"batch": batch.pk, "error": str(exc)})
        return _finish(batch, status=IngestStatus.REJECTED, message=f"The database refused a value ({_describe(exc)}).",
                       received=received, rejected=received, errors=errors.sorted_items())  # fmt: skip
    return _finish(
        batch, status=IngestStatus.PARTIAL if errors.count else IngestStatus.COMPLETED, received=received,
        rejected=received - accepted, errors=errors.sorted_items(), result=result,
    )  # fmt: skip


API_SOURCES = {IngestSource.API_JSON, IngestSource.API_CSV}


def _check_upload_size(rows: int, series: int) -> None:
    if rows > settings.INGEST_MAX_ROWS:
        raise ApplicationError(
            f"The upload holds more than {settings.INGEST_MAX_ROWS} rows (INGEST_MAX_ROWS); split it.",
            extra={"field": None},
        )
    if series > settings.INGEST_MAX_SERIES:
        raise ApplicationError(
            f"The upload touches more than {settings.INGEST_MAX_SERIES} series (INGEST_MAX_SERIES); split it.",
            extra={"field": None},
        )


RESERVED_RECORD_FIELDS = {"external_id", "id", "features"}
# A NUL escaped in JSON text (jsonb refuses it): \u0000 not preceded by an escaped backslash.
JSON_NUL = r"(?:^|[^\\])(?:\\\\)*\\u0000"


def _record_columns(frame: pd.DataFrame, *, first_row: int, errors: RowErrors) -> tuple[list, list, list[str]]:
    """(external ids, ISO timestamps, features as JSON text) of the valid rows of a chunk."""
    if frame.empty:
        raise ApplicationError("The upload holds no rows.")
    rows = np.arange(first_row, first_row + len(frame))
    bad = np.zeros(len(frame), dtype=bool)
    ts_name = find_ts_column(frame, required=False)
    ts_iso = np.full(len(frame), None, dtype=object)
    if ts_name is not None:
        present = ~frame[ts_name].isna().to_numpy() & (frame[ts_name].astype(str).str.strip() != "").to_numpy()
        ts_us, ts_bad = parse_timestamps(frame[ts_name])
        ts_bad &= present
        if ts_bad.any():
            errors.add(rows[ts_bad], ts_name, "not a timestamp", frame[ts_name].to_numpy()[ts_bad])
        bad |= ts_bad
        ok = present & ~ts_bad
        ts_iso[ok] = pd.to_datetime(ts_us[ok], unit="us", utc=True).map(lambda t: t.isoformat())
    id_name = next((c for c in ("external_id", "id") if c in frame.columns), None)
    external = np.full(len(frame), None, dtype=object)
    if id_name is not None:
        external[:] = [_external_id(value) for value in frame[id_name].tolist()]
        bad |= _refuse_text(external, rows, errors, id_name, settings.INGEST_MAX_EXTERNAL_ID_LENGTH,
                            "INGEST_MAX_EXTERNAL_ID_LENGTH")  # fmt: skip
    feature_frame = _record_features(frame, exclude={ts_name, id_name})
    features = feature_frame.to_json(orient="records", lines=True, date_format="iso").splitlines()
    nul = pd.Series(features, dtype=object).str.contains(JSON_NUL).to_numpy(dtype=bool) & ~bad
    if nul.any():
        errors.add(rows[nul], "features", "a feature name or value holds a NUL character")
        bad |= nul
    no_features = feature_frame.isna().all(axis=1).to_numpy() if len(feature_frame.columns) else ~bad
    if no_features.any():
        errors.add(rows[no_features], "features", "the row has no feature values")
        bad |= no_features
    ok = ~bad
    return list(external[ok]), list(ts_iso[ok]), [f for f, keep in zip(features, ok, strict=True) if keep]


def _refuse_text(cells: np.ndarray, rows: np.ndarray, errors: RowErrors, name: str, limit: int, setting: str):
    """Mask of the text cells longer than `limit` or holding a NUL character (PostgreSQL refuses NUL)."""
    text = pd.Series(cells, dtype=object)
    too_long = (text.str.len() > limit).to_numpy(dtype=bool)
    nul = text.str.contains("\x00", regex=False).fillna(False).to_numpy(dtype=bool) & ~too_long
    if too_long.any():
        errors.add(rows[too_long], name, f"at most {limit} characters ({setting})", cells[too_long])
    if nul.any():
        errors.add(rows[nul], name, "must not contain a NUL character")
    return too_long | nul


def _external_id(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value).strip() or None


def _record_features(frame: pd.DataFrame, *, exclude: set) -> pd.DataFrame:
    """Feature columns; a nested `features` object is flattened; numeric-looking text becomes numbers."""
    if "features" in frame.columns and frame["features"].map(lambda v: isinstance(v, dict)).any():
        nested = [v if isinstance(v, dict) else {} for v in frame["features"].tolist()]
        nested = pd.DataFrame.from_records(nested, index=frame.index)
        frame = frame.drop(columns=["features"]).combine_first(nested)
    columns = [c for c in frame.columns if c not in exclude and c not in RESERVED_RECORD_FIELDS]
    features = frame[columns].copy()
    for column in columns:
        if features[column].dtype == object or pd.api.types.is_string_dtype(features[column].dtype):
            text = features[column].astype("object")
            text = text.where(text.astype(str).str.strip() != "", None)
            numbers = pd.to_numeric(text, errors="coerce")
            features[column] = numbers if numbers.notna().sum() == text.notna().sum() else text
    return features


def _structural_errors(exc: ApplicationError, errors: RowErrors) -> list:
    if "errors" in exc.extra:
        return exc.extra["errors"]
    if "field" in exc.extra:
        return [{"row": None, "field": exc.extra["field"], "message": exc.message}]
    return errors.sorted_items()


def _rejection_message(batch: IngestBatch, errors: RowErrors, received: int) -> str:
    if not errors.count:
        return "The upload holds no rows to store."
    if batch.mode == IngestMode.STRICT:
        return f"{errors.count} invalid value(s) in {received} row(s); nothing was stored (mode strict)."
    return f"Every row was rejected ({errors.count} invalid value(s))."


def _finish(
    batch: IngestBatch, *, status: str, received: int = 0, rejected: int = 0, errors: list,
    message: str = "", result: LoadResult | None = None,
) -> IngestBatch:  # fmt: skip
    batch.status = status
    batch.received = received
    batch.rejected = rejected
    batch.errors = errors
    batch.message = message
    batch.inserted = result.inserted if result else 0
    batch.updated = result.updated if result else 0
    batch.duplicate = result.duplicate if result else 0
    batch.finished_at = timezone.now()
    batch.save()
    logger.info(
        "ingest batch finished",
        extra={"batch": batch.pk, "dataset": batch.dataset_id, "status": status, "received": received,
               "inserted": batch.inserted, "duplicate": batch.duplicate, "rejected": rejected},
    )  # fmt: skip
    return batch


def _announce(batch: IngestBatch, result: LoadResult) -> None:
    """Tell subscribers (realtime detection) which series got new or changed points, after commit."""
    if not result.touched:
        return
    touched = dict(result.touched)
    transaction.on_commit(lambda: _points_arrived(batch, touched))


def _points_arrived(batch: IngestBatch, touched: dict) -> None:
    """The points are committed: a subscriber that fails is logged and never fails the upload."""
    sent = signals.points_arrived.send_robust(
        sender=Dataset, dataset_id=batch.dataset_id, batch_id=batch.pk, series_ranges=touched
    )
    for receiver, outcome in sent:
        if isinstance(outcome, Exception):
            logger.error("points_arrived receiver failed", extra={"receiver": str(receiver), "error": repr(outcome)})
