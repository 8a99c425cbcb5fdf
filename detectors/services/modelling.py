"""Model versions: fitting, storing the fitted state as JSON, activation and rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from detectors.algorithms.base import Detector as Algorithm
from detectors.algorithms.postprocess import sensitivity_threshold
from detectors.algorithms.registry import get_algorithm
from detectors.models import Detector, ModelReason, ModelStatus, ModelVersion

CODE_VERSION = "1"
# A series needs this many points before a model is fitted on it.
MIN_TRAINING_POINTS = 30


def algorithm_fit(*, detector: Detector, values, timestamps=None) -> Algorithm:
    return get_algorithm(detector.algorithm)(**detector.params).fit(values, timestamps)


def algorithm_load(*, version: ModelVersion) -> Algorithm:
    """Rebuild a fitted algorithm from its stored JSON state (nothing is unpickled)."""
    return get_algorithm(version.algorithm).from_state(version.params, version.state)


def model_version_create(
    *,
    detector: Detector,
    series_id: int | None,
    fitted: Algorithm,
    training_ts: np.ndarray | None,
    training_size: int,
    reason: str = ModelReason.INITIAL,
    activate: bool = True,
) -> ModelVersion:
    """Store a fitted model as the next version of (detector, series); activate it if asked."""
    fields = {
        "algorithm": detector.algorithm,
        "params": detector.params,
        "state": fitted.get_state(),
        "sensitivity": detector.sensitivity,
        "threshold": sensitivity_threshold(detector.sensitivity),
        "training_start": _utc(training_ts[0]) if training_ts is not None and len(training_ts) else None,
        "training_end": _utc(training_ts[-1]) if training_ts is not None and len(training_ts) else None,
        "training_size": training_size,
        "reason": reason,
        "code_version": CODE_VERSION,
    }
    for attempt in range(3):  # two trainers of one series may pick the same number: try the next one
        try:
            with transaction.atomic():
                last = ModelVersion.objects.filter(detector=detector, series_id=series_id).aggregate(n=Max("version"))
                version = ModelVersion.objects.create(
                    detector=detector, series_id=series_id, version=(last["n"] or 0) + 1, **fields
                )
                if activate:
                    model_version_activate(version=version)
                return version
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


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


def _utc(us) -> datetime:
    return datetime.fromtimestamp(int(us) / 1e6, tz=UTC)


def detector_train(*, detector: Detector, reason: str = ModelReason.MANUAL, chunk_size: int = 50) -> int:
    """Fit a new active model for each watched series on its latest `training_points` points."""
    from detectors.selectors import detector_series_ids
    from ingestion.bulk import points_read_around
    from ingestion.models import Series

    trained = 0
    series_ids = detector_series_ids(detector=detector)
    for i in range(0, len(series_ids), chunk_size):
        chunk = series_ids[i : i + chunk_size]
        latest = dict(Series.objects.filter(pk__in=chunk).values_list("pk", "last_ts"))
        starts = [None if latest.get(sid) is None else latest[sid] + timedelta(microseconds=1) for sid in chunk]
        arrays = points_read_around(series_ids=chunk, starts=starts, history=detector.training_points).split()
        for series_id, (ts_us, values) in arrays.items():
            if len(ts_us) < MIN_TRAINING_POINTS:
                continue
            fitted = algorithm_fit(
                detector=detector, values=values, timestamps=pd.to_datetime(ts_us, unit="us", utc=True)
            )
            model_version_create(detector=detector, series_id=series_id, fitted=fitted, training_ts=ts_us,
                                 training_size=len(ts_us), reason=reason)  # fmt: skip
            trained += 1
    return trained
