"""Reads for forecasting: which series a config forecasts, forecasts, accuracy, plot data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import connection
from django.db.models import QuerySet

from forecasting.models import Forecast, ForecastConfig, ForecastModelVersion, ForecastPoint, ForecastRun
from ingestion.models import Series
from teams.selectors import team_ids_for_user


def config_series_ids(*, config: ForecastConfig, among: list[int] | None = None) -> list[int]:
    """Ids of the series the config's selector matches (metric and label containment)."""
    series = Series.objects.filter(dataset_id=config.dataset_id)
    if config.metric:
        series = series.filter(metric=config.metric)
    if config.label_filter:
        series = series.filter(labels__contains=config.label_filter)
    if among is not None:
        series = series.filter(pk__in=among)
    return list(series.order_by("pk").values_list("pk", flat=True))


def configs_for_user(*, user) -> QuerySet[ForecastConfig]:
    return ForecastConfig.objects.filter(dataset__team__in=team_ids_for_user(user=user))


def forecasts_for_user(*, user) -> QuerySet[Forecast]:
    return Forecast.objects.filter(config__dataset__team__in=team_ids_for_user(user=user))


def runs_for_user(*, user) -> QuerySet[ForecastRun]:
    return ForecastRun.objects.filter(config__dataset__team__in=team_ids_for_user(user=user))


def latest_forecast(*, series_id: int, config_id: int | None = None) -> Forecast | None:
    """The series' most recent forecast (of one config, if given)."""
    forecasts = Forecast.objects.filter(series_id=series_id)
    if config_id is not None:
        forecasts = forecasts.filter(config_id=config_id)
    return forecasts.order_by("-trained_until", "-made_at", "-pk").first()


def forecast_points(*, forecast: Forecast) -> list[ForecastPoint]:
    return list(ForecastPoint.objects.filter(forecast=forecast).order_by("ts"))


ACCURACY_SQL = f"""
    WITH realised AS (
        SELECT f.model_version_id AS mv, f.id AS fid, f.mase_scale, p.mean, p.actual, p.lower, p.upper, f.levels
        FROM {Forecast._meta.db_table} f
        JOIN {ForecastPoint._meta.db_table} p ON p.forecast_id = f.id
        WHERE f.config_id = %s AND p.actual IS NOT NULL
    ), errors AS (
        SELECT mv, count(DISTINCT fid) AS forecasts, count(*) AS points,
               avg(CASE WHEN abs(actual) + abs(mean) > 0
                        THEN 200 * abs(actual - mean) / (abs(actual) + abs(mean)) ELSE 0 END) AS smape,
               avg(abs(actual - mean) / nullif(mase_scale, 0)) AS mase
        FROM realised GROUP BY mv
    ), coverage AS (
        SELECT mv, jsonb_object_agg(level::text, share) AS coverage FROM (
            SELECT mv, lv.level, avg((actual >= lower[lv.k] AND actual <= upper[lv.k])::int) AS share
            FROM realised, unnest(levels) WITH ORDINALITY AS lv(level, k)
            GROUP BY mv, lv.level
        ) c GROUP BY mv
    )
    SELECT e.mv, e.forecasts, e.points, e.smape, e.mase, c.coverage
    FROM errors e LEFT JOIN coverage c USING (mv)
"""


def config_accuracy(*, config: ForecastConfig) -> list[dict]:
    """Realised accuracy per model version of the config, over every forecast point with an actual.

    sMAPE in %, MASE against each forecast's in-sample seasonal naive, coverage per interval level.
    Versions without realised points are listed with null figures.
    """
    with connection.cursor() as cursor:
        cursor.execute(ACCURACY_SQL, [config.pk])
        rows = {row[0]: (*row[1:5], json.loads(row[5]) if isinstance(row[5], str) else row[5]) for row in cursor}
    out = []
    for mv in ForecastModelVersion.objects.filter(config=config).order_by("-version"):
        forecasts, points, smape, mase, coverage = rows.get(mv.pk, (0, 0, None, None, None))
        out.append(
            {
                "model_version": mv.pk,
                "version": mv.version,
                "method": mv.method,
                "forecasts_realised": forecasts,
                "points_realised": points,
                "smape": None if smape is None else round(float(smape), 4),
                "mase": None if mase is None else round(float(mase), 4),
                "coverage": {k: round(float(v), 4) for k, v in (coverage or {}).items()},
                "forecasts": mv.forecasts.count(),
            }
        )
    return out


@dataclass
class PlotData:
    points: list[tuple[datetime, float]]
    forecast: list[tuple[datetime, float]]
    band: list[tuple[datetime, float, float]]
    inner_band: list[tuple[datetime, float, float]]


def forecast_plot_data(*, forecast: Forecast, history: int = 300) -> PlotData:
    """The series' points before and during the forecast, the forecast and its widest and narrowest bands."""
    from ingestion.bulk import points_read_around, timestamps_from_us

    steps = forecast_points(forecast=forecast)
    end = steps[-1].ts + timedelta(microseconds=1) if steps else None
    start = forecast.trained_until + timedelta(microseconds=1)
    arrays = points_read_around(series_ids=[forecast.series_id], starts=[start], end=end, history=history)
    ts_us, values = arrays.split().get(forecast.series_id, (np.empty(0, np.int64), np.empty(0)))
    stamps = timestamps_from_us(ts_us).to_pydatetime()
    points = list(zip(stamps, values.tolist(), strict=True))
    widest = int(np.argmax(forecast.levels)) if forecast.levels else 0
    narrowest = int(np.argmin(forecast.levels)) if forecast.levels else 0
    return PlotData(
        points=points,
        forecast=[(p.ts, p.mean) for p in steps],
        band=[(p.ts, p.lower[widest], p.upper[widest]) for p in steps],
        inner_band=[(p.ts, p.lower[narrowest], p.upper[narrowest]) for p in steps] if len(forecast.levels) > 1 else [],
    )


BAND_SQL = f"""
    SELECT DISTINCT ON (p.ts) (extract(epoch FROM p.ts - 'epoch'::timestamptz) * 1000000)::bigint, p.mean,
           p.lower[array_position(f.levels, %(level)s::smallint)],
           p.upper[array_position(f.levels, %(level)s::smallint)]
    FROM {ForecastPoint._meta.db_table} p
    JOIN {Forecast._meta.db_table} f ON f.id = p.forecast_id
    WHERE f.series_id = %(series)s
      AND p.ts IN (SELECT 'epoch'::timestamptz + us * interval '1 microsecond' FROM unnest(%(us)s::bigint[]) AS us)
      AND f.trained_until < p.ts AND array_position(f.levels, %(level)s::smallint) IS NOT NULL
      AND (%(config)s::bigint IS NULL OR f.config_id = %(config)s::bigint)
    ORDER BY p.ts, f.trained_until DESC, f.id DESC
"""


def forecast_band_at(
    *, series_id: int, ts_us: np.ndarray, level: int, config_id: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(expected, lower, upper) at each timestamp (µs since the epoch) from the stored forecasts.

    Each timestamp takes the most recent forecast made before it (fitted on points strictly earlier),
    so a detector that uses this band as its expectation never looks ahead. NaN where no stored
    forecast at ``level`` covers the timestamp. One query.
    """
    ts_us = np.asarray(ts_us, dtype=np.int64)
    out = np.full((3, len(ts_us)), np.nan)
    if not len(ts_us):
        return out[0], out[1], out[2]
    with connection.cursor() as cursor:
        cursor.execute(BAND_SQL, {"series": series_id, "us": ts_us.tolist(), "level": level, "config": config_id})
        rows = cursor.fetchall()
    if rows:
        found = np.array([r[0] for r in rows], dtype=np.int64)
        values = np.array([r[1:] for r in rows], dtype=float).T
        order = np.argsort(ts_us, kind="stable")
        pos = np.searchsorted(ts_us[order], found)
        out[:, order[pos]] = values
    return out[0], out[1], out[2]
