"""Forecast configuration: validated against the method's own params schema; model versions by method+params."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from common.exceptions import ApplicationError
from common.schedules import next_run_at, schedule_check
from forecasting.methods import ParamsError, get_method, method_keys
from forecasting.models import ForecastConfig, ForecastModelVersion
from ingestion.models import DatasetKind

EDITABLE_FIELDS = {
    "name", "metric", "label_filter", "method", "params", "horizon", "levels", "training_points",
    "schedule_interval", "threshold_above", "threshold_below", "threshold_level", "enabled",
}  # fmt: skip
MAX_HORIZON = 10_000
MIN_TRAINING_POINTS = 16


def validate_method_params(*, method: str, params: dict | None) -> dict:
    """The params as given (validated); ApplicationError naming each bad field."""
    if method not in method_keys():
        raise ApplicationError(
            f"Unknown method {method!r}; choose one of: {', '.join(method_keys())}.", extra={"field": "method"}
        )
    params = dict(params or {})
    try:
        get_method(method).validate_params(params)
    except ParamsError as exc:
        raise ApplicationError("Invalid method params.", extra={"field": "params", "params": exc.errors}) from exc
    return params


def _check(config: ForecastConfig) -> None:
    if config.dataset.kind != DatasetKind.TIMESERIES:
        raise ApplicationError("Forecasts need a time series dataset.", extra={"field": "dataset"})
    if not isinstance(config.label_filter, dict):
        raise ApplicationError("label_filter must be an object.", extra={"field": "label_filter"})
    config.params = validate_method_params(method=config.method, params=config.params)
    if not isinstance(config.horizon, int) or not 1 <= config.horizon <= MAX_HORIZON:
        raise ApplicationError(f"horizon must be between 1 and {MAX_HORIZON}.", extra={"field": "horizon"})
    levels = config.levels
    if not isinstance(levels, list) or not levels or len(levels) > 5:
        raise ApplicationError("levels must be a list of 1 to 5 percentages.", extra={"field": "levels"})
    if any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 99 for v in levels):
        raise ApplicationError("each level must be an integer between 1 and 99.", extra={"field": "levels"})
    if len(set(levels)) != len(levels):
        raise ApplicationError("levels must not repeat.", extra={"field": "levels"})
    config.levels = sorted(levels)
    if config.training_points < MIN_TRAINING_POINTS:
        raise ApplicationError(
            f"training_points must be at least {MIN_TRAINING_POINTS}.", extra={"field": "training_points"}
        )
    if config.threshold_level is not None and config.threshold_level not in config.levels:
        raise ApplicationError("threshold_level must be one of levels.", extra={"field": "threshold_level"})
    above, below = config.threshold_above, config.threshold_below
    if above is not None and below is not None and below >= above:
        raise ApplicationError("threshold_below must be below threshold_above.", extra={"field": "threshold_below"})
    schedule_check(config.schedule_interval)


@transaction.atomic
def forecast_config_create(*, dataset, name: str, user=None, **fields) -> ForecastConfig:
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise ApplicationError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    if ForecastConfig.objects.filter(dataset=dataset, name=name).exists():
        raise ApplicationError(f"The dataset already has a forecast named {name!r}.", extra={"field": "name"})
    config = ForecastConfig(dataset=dataset, name=name, created_by=user, **fields)
    _check(config)
    config.next_run_at = next_run_at(enabled=config.enabled, interval=config.schedule_interval, now=timezone.now())
    config.full_clean(exclude=["params", "label_filter", "levels"])
    config.save()
    return config


@transaction.atomic
def forecast_config_update(*, config: ForecastConfig, **fields) -> ForecastConfig:
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise ApplicationError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    schedule_changed = any(k in fields and fields[k] != getattr(config, k) for k in ("schedule_interval", "enabled"))
    for key, value in fields.items():
        setattr(config, key, value)
    _check(config)
    if schedule_changed:
        config.next_run_at = next_run_at(enabled=config.enabled, interval=config.schedule_interval, now=timezone.now())
    config.full_clean(exclude=["params", "label_filter", "levels"])
    config.save()
    return config


def model_version_current(*, config: ForecastConfig) -> ForecastModelVersion:
    """The config's version for its current method and params, created (numbered next) when new."""
    for _ in range(3):
        existing = (
            ForecastModelVersion.objects.filter(config=config, method=config.method, params=config.params)
            .order_by("-version")
            .first()
        )
        if existing is not None:
            return existing
        number = (ForecastModelVersion.objects.filter(config=config).aggregate(n=Max("version"))["n"] or 0) + 1
        try:
            with transaction.atomic():
                return ForecastModelVersion.objects.create(
                    config=config, version=number, method=config.method, params=config.params
                )
        except IntegrityError:  # another worker numbered it first: read theirs
            continue
    raise ApplicationError("Could not number a new model version; try again.")
