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
from ingestion.bulk import timestamps_from_us, us_from_utc, utc_from_us
from ingestion.models import Series

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
    metrics: list[str] | None = None  # joint metrics: the entity's members it was fitted on, in column order

    def state(self) -> dict:
        state = self.fitted.get_state()
        return state if self.metrics is None else {**state, "metrics": self.metrics}


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
                algorithm=detector.algorithm, params=detector.params, state=m.state(),
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


def model_is_current(*, version: ModelVersion, detector: Detector, metrics: list[str] | None = None) -> bool:
    """Was this model fitted with the detector's current algorithm and params, and (joint metrics) on the
    entity's current members? A metric that joined or left the entity makes it stale."""
    return (
        version.algorithm == detector.algorithm
        and version.params == detector.params
        and (version.state or {}).get("metrics") == metrics
    )


def model_metrics(*, detector: Detector, entity) -> list[str] | None:
    """What a model of this entity records as its members: the metrics with joint metrics, else nothing."""
    return list(entity.metrics) if detector.joint_metrics else None


def detector_train(
    *, detector: Detector, reason: str = ModelReason.MANUAL, requested_at: datetime | None = None, chunk_size: int = 50
) -> int:
    """Fit a new active model for each watched series (or entity, with joint metrics) on its latest
    `training_points` points.

    Series whose active model is newer than `requested_at` are skipped, so a training request that
    runs twice (a redelivered task) trains each series once.
    """
    from detectors.selectors import detector_entities

    trained = 0
    entities = detector_entities(detector=detector)
    if requested_at is not None:
        done = set(
            ModelVersion.objects.filter(
                detector=detector, status=ModelStatus.ACTIVE, activated_at__gte=requested_at
            ).values_list("series_id", flat=True)
        )
        entities = [entity for entity in entities if entity.lead not in done]
    for i in range(0, len(entities), chunk_size):
        models = _fit_latest(detector, entities[i : i + chunk_size])
        trained += len(model_versions_store(detector=detector, models=models, reason=reason))
    return trained


def _fit_latest(detector: Detector, entities: list) -> list[FittedModel]:
    """Models fitted on each entity's latest `training_points` points (labelled anomalies kept out)."""
    from detectors.selectors import entity_points_read
    from detectors.services.labelled import entity_spans, without_spans

    latest = dict(
        Series.objects.filter(pk__in=[sid for e in entities for sid in e.members]).values_list("pk", "last_ts")
    )
    starts = [_after_latest([latest.get(sid) for sid in entity.members]) for entity in entities]
    points = entity_points_read(entities=entities, starts=starts, history=detector.training_points)
    spans = entity_spans(detector=detector, entities=entities)
    fitted = []
    for entity in entities:
        ts_us, values = points[entity.lead]
        if len(ts_us) < MIN_TRAINING_POINTS:
            continue
        learn_from = without_spans(ts_us, values, spans.get(entity.lead, []))
        model = algorithm_fit(detector=detector, values=learn_from, timestamps=timestamps_from_us(ts_us))
        metrics = model_metrics(detector=detector, entity=entity)
        fitted.append(FittedModel(entity.lead, model, ts_us, len(ts_us), metrics))
    return fitted


def _after_latest(latest: list[datetime | None]) -> datetime | None:
    known = [ts for ts in latest if ts is not None]
    return max(known) + timedelta(microseconds=1) if known else None


def model_version_rebaseline(*, detector: Detector, series_id: int, since: datetime) -> ModelVersion | None:
    """A new active version fitted on the series' points (its entity's, with joint metrics) from `since` on:
    the level there is the new normal.

    With fewer than MIN_TRAINING_POINTS points since then, the latest MIN_TRAINING_POINTS are used (the
    new level and the little before it). None when the series has too few points at all.
    """
    from detectors.selectors import entities_of, entity_points_read

    entity = next(iter(entities_of(detector=detector, series_ids=[series_id])), None)
    if entity is None:
        return None
    ts_us, values = entity_points_read(entities=[entity], starts=[since], history=MIN_TRAINING_POINTS)[entity.lead]
    first = min(int(np.searchsorted(ts_us, us_from_utc(since))), max(len(ts_us) - MIN_TRAINING_POINTS, 0))
    ts_us, values = ts_us[first:][-detector.training_points :], values[first:][-detector.training_points :]
    if len(ts_us) < MIN_TRAINING_POINTS:
        return None
    fitted = algorithm_fit(detector=detector, values=values, timestamps=timestamps_from_us(ts_us))
    model = FittedModel(entity.lead, fitted, ts_us, len(ts_us), model_metrics(detector=detector, entity=entity))
    return model_versions_store(detector=detector, models=[model], reason=ModelReason.FEEDBACK).get(entity.lead)
