"""Model versions: fitting, storing the fitted state as JSON, activation and rollback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from detectors.algorithms.base import Detector as Algorithm
from detectors.algorithms.postprocess import sensitivity_threshold
from detectors.algorithms.registry import get_algorithm
from detectors.models import Detector, ModelReason, ModelStatus, ModelVersion
from ingestion.bulk import points_read_around, timestamps_from_us, utc_from_us

CODE_VERSION = "1"
# A series needs this many points before a model is fitted on it.
MIN_TRAINING_POINTS = 30


def algorithm_fit(*, detector: Detector, values, timestamps=None) -> Algorithm:
    return get_algorithm(detector.algorithm)(**detector.params).fit(values, timestamps)


def algorithm_load(*, version: ModelVersion) -> Algorithm:
    """Rebuild a fitted algorithm from its stored JSON state (nothing is unpickled)."""
    return get_algorithm(version.algorithm).from_state(version.params, version.state)


@dataclass
class FittedModel:
    """A model fitted for one series, not stored yet."""

    series_id: int | None
    fitted: Algorithm
    training_ts: np.ndarray  # µs since the epoch
    training_size: int


def model_versions_store(
    *, detector: Detector, models: list[FittedModel], reason: str = ModelReason.INITIAL
) -> dict[int | None, ModelVersion]:
    """Store fitted models as the next version of each (detector, series) and activate them.

    One transaction and a handful of statements for any number of series; the detector row is locked
    so that concurrent trainers never pick the same version number.
    """
    if not models:
        return {}
    series_ids = [m.series_id for m in models]
    now = timezone.now()
    with transaction.atomic():
        Detector.objects.select_for_update().filter(pk=detector.pk).exists()
        versions = ModelVersion.objects.filter(detector=detector, series_id__in=series_ids)
        last = dict(versions.values("series_id").annotate(n=Max("version")).values_list("series_id", "n"))
        learnt = _learnt_calibration(detector, versions)
        versions.filter(status=ModelStatus.ACTIVE).update(status=ModelStatus.RETIRED, updated_at=now)
        created = ModelVersion.objects.bulk_create([
            ModelVersion(
                detector=detector, series_id=m.series_id, version=(last.get(m.series_id) or 0) + 1,
                algorithm=detector.algorithm, params=detector.params, state=m.fitted.get_state(),
                sensitivity=detector.sensitivity,
                threshold=learnt.get(m.series_id, {}).get("threshold", sensitivity_threshold(detector.sensitivity)),
                triage=learnt.get(m.series_id, {}).get("triage", {}),
                training_start=utc_from_us(m.training_ts[0]) if len(m.training_ts) else None,
                training_end=utc_from_us(m.training_ts[-1]) if len(m.training_ts) else None,
                training_size=m.training_size, reason=reason, code_version=CODE_VERSION,
                status=ModelStatus.ACTIVE, activated_at=now,
            )
            for m in models
        ])  # fmt: skip
    return {version.series_id: version for version in created}


def _learnt_calibration(detector: Detector, versions) -> dict[int | None, dict]:
    """{series id: threshold and triage} of active versions that learnt them from labels, for the same
    sensitivity: a refit (schedule, re-baseline) keeps what the labels taught."""
    active = versions.filter(status=ModelStatus.ACTIVE, sensitivity=detector.sensitivity)
    return {
        series_id: {"threshold": threshold, "triage": triage}
        for series_id, threshold, triage in active.values_list("series_id", "threshold", "triage")
        if triage or threshold != sensitivity_threshold(detector.sensitivity)
    }


@transaction.atomic
def model_version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make `version` the one active model of its (detector, series); the previous one is retired.

    Activating an older version is the rollback.
    """
    if version.status == ModelStatus.ACTIVE:
        return version
    ModelVersion.objects.select_for_update().filter(
        detector_id=version.detector_id, series_id=version.series_id, status=ModelStatus.ACTIVE
    ).update(status=ModelStatus.RETIRED, updated_at=timezone.now())
    version.status = ModelStatus.ACTIVE
    version.activated_at = timezone.now()
    version.save(update_fields=["status", "activated_at", "updated_at"])
    return version


def active_models(*, detector: Detector, series_ids: list[int] | None) -> dict[int | None, ModelVersion]:
    versions = ModelVersion.objects.filter(detector=detector, status=ModelStatus.ACTIVE)
    if series_ids is not None:
        versions = versions.filter(series_id__in=series_ids)
    return {version.series_id: version for version in versions}


def model_is_current(*, version: ModelVersion, detector: Detector) -> bool:
    """Was this model fitted with the detector's current algorithm and params?"""
    return version.algorithm == detector.algorithm and version.params == detector.params


def detector_train(
    *, detector: Detector, reason: str = ModelReason.MANUAL, requested_at: datetime | None = None, chunk_size: int = 50
) -> int:
    """Fit a new active model for each watched series on its latest `training_points` points.

    Series whose active model is newer than `requested_at` are skipped, so a training request that
    runs twice (a redelivered task) trains each series once.
    """
    from detectors.selectors import detector_series_ids
    from detectors.services.labelled import excluded_spans, without_spans
    from ingestion.models import Series

    trained = 0
    series_ids = detector_series_ids(detector=detector)
    if requested_at is not None:
        done = ModelVersion.objects.filter(
            detector=detector, status=ModelStatus.ACTIVE, activated_at__gte=requested_at
        ).values_list("series_id", flat=True)
        series_ids = sorted(set(series_ids) - set(done))
    for i in range(0, len(series_ids), chunk_size):
        chunk = series_ids[i : i + chunk_size]
        latest = dict(Series.objects.filter(pk__in=chunk).values_list("pk", "last_ts"))
        starts = [None if latest.get(sid) is None else latest[sid] + timedelta(microseconds=1) for sid in chunk]
        arrays = points_read_around(series_ids=chunk, starts=starts, history=detector.training_points).split()
        spans = excluded_spans(detector=detector, series_ids=chunk)
        fitted = [
            FittedModel(
                series_id,
                algorithm_fit(
                    detector=detector,
                    values=without_spans(ts_us, values, spans.get(series_id, [])),
                    timestamps=timestamps_from_us(ts_us),
                ),
                ts_us,
                len(ts_us),
            )  # fmt: skip
            for series_id, (ts_us, values) in arrays.items()
            if len(ts_us) >= MIN_TRAINING_POINTS
        ]
        trained += len(model_versions_store(detector=detector, models=fitted, reason=reason))
    return trained


def model_version_rebaseline(*, detector: Detector, series_id: int, since: datetime) -> ModelVersion | None:
    """A new active version fitted on the series' points from `since` on: the level there is the new normal.

    With fewer than MIN_TRAINING_POINTS points since then, the latest MIN_TRAINING_POINTS are used (the
    new level and the little before it). None when the series has too few points at all.
    """
    arrays = points_read_around(series_ids=[series_id], starts=[since], history=MIN_TRAINING_POINTS).split()
    ts_us, values = arrays.get(series_id, (np.empty(0, np.int64), np.empty(0)))
    first = min(int(np.searchsorted(ts_us, since.timestamp() * 1e6)), max(len(ts_us) - MIN_TRAINING_POINTS, 0))
    ts_us, values = ts_us[first:][-detector.training_points :], values[first:][-detector.training_points :]
    if len(ts_us) < MIN_TRAINING_POINTS:
        return None
    fitted = algorithm_fit(detector=detector, values=values, timestamps=timestamps_from_us(ts_us))
    stored = model_versions_store(
        detector=detector, models=[FittedModel(series_id, fitted, ts_us, len(ts_us))], reason=ModelReason.FEEDBACK
    )
    return stored.get(series_id)
