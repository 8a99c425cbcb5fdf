"""Forecasting a chunk of series: one query in, the method per series, forecasts and points out in bulk.

Per series and origin the points read are its latest ``training_points`` points before the origin
(the latest forecast: every point up to the newest). The forecast starts one sampling step after the
last of them. Forecast rows are unique per (config, series, last training point, model version), so a
chunk that runs twice stores nothing twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db import connection, transaction

from forecasting import signals
from forecasting.methods import get_method
from forecasting.models import Forecast, ForecastConfig, ForecastModelVersion, ForecastPoint
from forecasting.services.configs import MIN_TRAINING_POINTS
from forecasting.services.crossings import crossings_detect
from forecasting.services.tracking import forecasts_track
from ingestion.bulk import points_read_around, timestamps_from_us
from ingestion.models import Series

logger = logging.getLogger(__name__)
ONE_US = timedelta(microseconds=1)


@dataclass
class Made:
    series_id: int
    trained_until: datetime
    made_at: datetime
    training_size: int
    mase_scale: float
    detail: dict
    ts: np.ndarray  # datetime64[us]
    mean: np.ndarray
    lower: np.ndarray  # (h, levels)
    upper: np.ndarray


@dataclass
class ChunkForecast:
    made: list[Made] = field(default_factory=list)
    stored: int = 0
    crossings: int = 0
    errors: list[str] = field(default_factory=list)


def mase_scale(values: np.ndarray, periods: list[int]) -> float:
    m = min(periods, default=1)
    if len(values) <= m:
        m = 1
    diffs = np.abs(values[m:] - values[:-m])
    scale = float(np.mean(diffs)) if len(diffs) else 0.0
    return scale if scale > 0 else float(np.mean(np.abs(values))) or 1.0


def forecast_series(
    *, config: ForecastConfig, series_id: int, ts_us: np.ndarray, values: np.ndarray, made_at: datetime
) -> Made:
    """Fit the config's method on one series' points and forecast its horizon (no database)."""
    if len(values) < MIN_TRAINING_POINTS:
        raise ValueError(f"{len(values)} points before the origin; at least {MIN_TRAINING_POINTS} are needed")
    stamps = timestamps_from_us(ts_us)
    model = get_method(config.method)(**config.params).fit(values, stamps, horizon=config.horizon)
    result = model.predict(config.horizon, levels=config.levels)
    if result.timestamps is None:
        raise ValueError("the points have no regular sampling step")
    detail = {"periods": list(model.periods_)}
    if hasattr(model, "chosen_"):
        detail["chosen"] = list(model.chosen_)
    return Made(
        series_id=series_id,
        trained_until=stamps[-1].to_pydatetime(),
        made_at=made_at,
        training_size=len(values),
        mase_scale=mase_scale(values, model.periods_),
        detail=detail,
        ts=result.timestamps.tz_convert(None).to_numpy().astype("datetime64[us]"),
        mean=result.mean,
        lower=np.column_stack([result.lower[lv] for lv in config.levels]),
        upper=np.column_stack([result.upper[lv] for lv in config.levels]),
    )


def chunk_forecast(
    *,
    config: ForecastConfig,
    model_version: ForecastModelVersion,
    series_ids: list[int],
    origins: list[datetime] | None = None,
    run_id: int | None = None,
    now: datetime,
) -> ChunkForecast:
    """Forecast each series from its newest point, or as of each origin (backfills); store in bulk."""
    outcome = ChunkForecast()
    if origins:
        plans = [(origin, [origin] * len(series_ids), origin) for origin in origins]
    else:
        last = dict(Series.objects.filter(pk__in=series_ids).values_list("pk", "last_ts"))
        starts = [last[s] + ONE_US if last.get(s) else None for s in series_ids]
        plans = [(now, starts, None)]
    for made_at, starts, end in plans:
        arrays = points_read_around(series_ids=series_ids, starts=starts, end=end, history=config.training_points)
        points = arrays.split()
        for series_id in series_ids:
            ts_us, values = points.get(series_id, (np.empty(0, np.int64), np.empty(0)))
            try:
                outcome.made.append(
                    forecast_series(config=config, series_id=series_id, ts_us=ts_us, values=values, made_at=made_at)
                )
            except Exception as exc:  # one bad series must not sink the chunk
                logger.warning("forecast failed", extra={"series": series_id, "config": config.pk, "error": str(exc)})
                outcome.errors.append(f"series {series_id}: {type(exc).__name__}: {exc}")
    with transaction.atomic():
        ids = forecasts_store(config=config, model_version=model_version, made=outcome.made, run_id=run_id)
        outcome.stored = len(ids)
        if ids:
            forecasts_track(forecast_ids=ids)
            if not origins:  # a backfill's past forecasts predict nothing any more
                outcome.crossings = len(crossings_detect(config=config, forecast_ids=ids))
                transaction.on_commit(lambda: _announce_made(config.pk, list(ids)))
    return outcome


def _announce_made(config_id: int, forecast_ids: list[int]) -> None:
    for receiver, result in signals.forecasts_made.send_robust(
        sender=Forecast, config_id=config_id, forecast_ids=forecast_ids
    ):
        if isinstance(result, Exception):
            logger.error("forecasts_made receiver failed", extra={"receiver": repr(receiver), "error": repr(result)})


INSERT_FORECASTS = f"""
    INSERT INTO {Forecast._meta.db_table}
        (config_id, series_id, model_version_id, run_id, made_at, trained_until, horizon, levels, training_size,
         detail, mase_scale, points_realised, coverage, created_at, updated_at)
    SELECT %s, u.series_id, %s, %s, u.made_at, u.trained_until, %s, %s, u.training_size, u.detail::jsonb,
           u.mase_scale, 0, '{{}}', now(), now()
    FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::int[], %s::text[], %s::float8[])
        AS u(series_id, made_at, trained_until, training_size, detail, mase_scale)
    ON CONFLICT ON CONSTRAINT forecast_unique_origin DO NOTHING
    RETURNING id, series_id, trained_until
"""

INSERT_POINTS = f"""
    INSERT INTO {ForecastPoint._meta.db_table} (forecast_id, ts, mean, lower, upper)
    SELECT u.forecast_id, u.ts, u.mean,
           (%s::float8[])[(u.i - 1) * %s + 1 : u.i * %s], (%s::float8[])[(u.i - 1) * %s + 1 : u.i * %s]
    FROM unnest(%s::bigint[], %s::timestamptz[], %s::float8[]) WITH ORDINALITY AS u(forecast_id, ts, mean, i)
    ON CONFLICT DO NOTHING
"""


def forecasts_store(
    *, config: ForecastConfig, model_version: ForecastModelVersion, made: list[Made], run_id: int | None
) -> list[int]:
    """Insert the forecasts and their points in two statements; returns the ids of new forecasts."""
    if not made:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT_FORECASTS,
            [
                config.pk, model_version.pk, run_id, config.horizon, list(config.levels),
                [m.series_id for m in made], [m.made_at for m in made], [m.trained_until for m in made],
                [m.training_size for m in made], [json.dumps(m.detail) for m in made], [m.mase_scale for m in made],
            ],
        )  # fmt: skip
        created = {(series_id, trained_until): fid for fid, series_id, trained_until in cursor.fetchall()}
        new = [(created[(m.series_id, m.trained_until)], m) for m in made if (m.series_id, m.trained_until) in created]
        if not new:
            return []
        n_levels = len(config.levels)
        forecast_ids = np.concatenate([np.full(len(m.mean), fid, dtype=np.int64) for fid, m in new])
        ts = np.concatenate([m.ts for _, m in new])
        mean = np.concatenate([m.mean for _, m in new])
        lower = np.concatenate([m.lower for _, m in new]).ravel()
        upper = np.concatenate([m.upper for _, m in new]).ravel()
        stamps = timestamps_from_us(ts.astype(np.int64)).to_pydatetime().tolist()
        cursor.execute(
            INSERT_POINTS,
            [lower.tolist(), n_levels, n_levels, upper.tolist(), n_levels, n_levels,
             forecast_ids.tolist(), stamps, mean.tolist()],
        )  # fmt: skip
    return [fid for fid, _ in new]
