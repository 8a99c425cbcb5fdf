"""Detector configuration: validated against the algorithm's own params schema."""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from common.exceptions import ApplicationError
from common.schedules import next_run_at, schedule_check
from detectors.algorithms.params import ParamsError
from detectors.algorithms.registry import algorithm_keys, get_algorithm
from detectors.models import Detector, SeriesCursor
from detectors.selectors import detector_entities
from ingestion.models import DatasetKind, Record, Series
from teams.models import Team

EDITABLE_FIELDS = {
    "name", "metric", "label_filter", "joint_metrics", "algorithm", "params", "sensitivity", "training_points",
    "close_after", "adapt_after", "mask_after", "schedule_interval", "realtime", "enabled", "forecast_config",
    "forecast_level", "retrain_after_labels", "feedback_beta",
}  # fmt: skip


def validate_algorithm_params(*, algorithm: str, params: dict | None, table: bool = False) -> dict:
    """The algorithm's full params (defaults filled in); ApplicationError naming each bad field."""
    if algorithm not in algorithm_keys():
        raise ApplicationError(
            f"Unknown algorithm {algorithm!r}; choose one of: {', '.join(algorithm_keys())}.",
            extra={"field": "algorithm"},
        )
    cls = get_algorithm(algorithm)
    params = dict(params or {})
    if table:
        if not cls.tags.get("table"):
            raise ApplicationError(
                f"{algorithm} scores series; a table dataset needs one of: {', '.join(table_algorithms())}.",
                extra={"field": "algorithm"},
            )
        params.setdefault("mode", "table")
    try:
        cls.validate_params(params)
    except ParamsError as exc:
        raise ApplicationError("Invalid algorithm params.", extra={"field": "params", "params": exc.errors}) from exc
    return params


def table_algorithms() -> list[str]:
    return [key for key in algorithm_keys() if get_algorithm(key).tags.get("table")]


def detector_validate(*, detector: Detector) -> None:
    """Check a detector's configuration (ApplicationError naming the field); fills in the params' defaults."""
    if detector.dataset.kind == DatasetKind.TABLE and (detector.metric or detector.label_filter):
        raise ApplicationError("A table dataset has no series to select: leave metric and labels empty.")
    if not isinstance(detector.label_filter, dict):
        raise ApplicationError("label_filter must be an object.", extra={"field": "label_filter"})
    detector.params = validate_algorithm_params(
        algorithm=detector.algorithm, params=detector.params, table=detector.dataset.kind == DatasetKind.TABLE
    )
    _check_joint_metrics(detector)
    _check_forecast(detector)
    schedule_check(detector.schedule_interval)
    if detector.training_points > settings.DETECTOR_MAX_TRAINING_POINTS:
        raise ApplicationError(
            f"training_points must be at most {settings.DETECTOR_MAX_TRAINING_POINTS} (DETECTOR_MAX_TRAINING_POINTS).",
            extra={"field": "training_points"},
        )


def multivariate_algorithms() -> list[str]:
    return [key for key in algorithm_keys() if get_algorithm(key).tags.get("multivariate")]


def _check_joint_metrics(detector: Detector) -> None:
    """Joint metrics need series, every metric of an entity, and an algorithm that scores several columns."""
    if not detector.joint_metrics:
        return
    if detector.dataset.kind == DatasetKind.TABLE:
        raise _joint_refused("joint_metrics scores the series of one entity together; a table dataset has none.")
    if not get_algorithm(detector.algorithm).tags.get("multivariate"):
        raise _joint_refused(
            f"joint_metrics needs a multivariate algorithm; {detector.algorithm} scores one series at a time. "
            f"Choose one of: {', '.join(multivariate_algorithms())}."
        )
    if detector.metric:
        raise _joint_refused("joint_metrics scores every metric of an entity together: leave metric empty.")
    if detector.forecast_config_id is not None:
        raise _joint_refused("joint_metrics scores several metrics together; a forecast band covers one series.")


def _joint_refused(message: str) -> ApplicationError:
    return ApplicationError(message, extra={"field": "joint_metrics"})


def _check_forecast(detector: Detector) -> None:
    """A forecast band comes from a config of the detector's own dataset, at one of its levels."""
    config = detector.forecast_config
    if config is None:
        return
    if config.dataset_id != detector.dataset_id:
        raise ApplicationError(
            "The forecast config must forecast the detector's own dataset.", extra={"field": "forecast_config"}
        )
    if detector.forecast_level not in config.levels:
        raise ApplicationError(
            f"forecast_level must be one of the config's levels: {', '.join(map(str, config.levels))}.",
            extra={"field": "forecast_level"},
        )


@transaction.atomic
def detector_create(*, dataset, name: str, user=None, **fields) -> Detector:
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise ApplicationError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    if Detector.objects.filter(dataset=dataset, name=name).exists():
        raise ApplicationError(f"The dataset already has a detector named {name!r}.", extra={"field": "name"})
    Team.objects.select_for_update().filter(pk=dataset.team_id).first()  # count and insert one at a time per team
    if Detector.objects.filter(dataset__team_id=dataset.team_id).count() >= settings.DETECTOR_MAX_PER_TEAM:
        raise ApplicationError(
            f"The team already has {settings.DETECTOR_MAX_PER_TEAM} detectors, the most allowed "
            "(DETECTOR_MAX_PER_TEAM)."
        )
    detector = Detector(dataset=dataset, name=name, created_by=user, **fields)
    detector_validate(detector=detector)
    detector.next_run_at = next_run_at(
        enabled=detector.enabled, interval=detector.schedule_interval, now=timezone.now()
    )
    detector.full_clean(exclude=["params", "label_filter"])
    detector.save()
    cursors_start_now(detector=detector)
    return detector


def cursors_start_now(*, detector: Detector) -> None:
    """A new detector watches its series (or records) from the latest on; the past is for backfills."""
    if detector.dataset.kind == DatasetKind.TABLE:
        latest = Record.objects.filter(dataset_id=detector.dataset_id).aggregate(last=Max("pk"))["last"]
        Detector.objects.filter(pk=detector.pk).update(record_cursor=latest or 0)
        return
    # With joint metrics an entity's cursor lives on its lead.
    series_ids = [entity.lead for entity in detector_entities(detector=detector)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {SeriesCursor._meta.db_table} (detector_id, series_id, scored_until, pending)
            SELECT %s, id, last_ts, false FROM {Series._meta.db_table} WHERE id = ANY(%s)
            ON CONFLICT (detector_id, series_id) DO NOTHING
            """,
            [detector.pk, series_ids],
        )


@transaction.atomic
def detector_update(*, detector: Detector, **fields) -> Detector:
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise ApplicationError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    schedule_changed = any(k in fields and fields[k] != getattr(detector, k) for k in ("schedule_interval", "enabled"))
    for key, value in fields.items():
        setattr(detector, key, value)
    detector_validate(detector=detector)
    if schedule_changed:
        detector.next_run_at = next_run_at(
            enabled=detector.enabled, interval=detector.schedule_interval, now=timezone.now()
        )
    detector.full_clean(exclude=["params", "label_filter"])
    detector.save()
    return detector
