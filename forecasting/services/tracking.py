"""Tracking: as actuals arrive, each forecast's realised sMAPE, MASE and interval coverage.

Two set-based statements: the points' ``actual`` is filled from the series' stored points, then the
touched forecasts' figures are recomputed from all their realised points.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from forecasting.models import Forecast, ForecastPoint
from ingestion.models import Point

FILL_ACTUALS = f"""
    UPDATE {ForecastPoint._meta.db_table} fp SET actual = p.value
    FROM {Forecast._meta.db_table} f, {Point._meta.db_table} p
    WHERE fp.forecast_id = f.id AND fp.actual IS NULL AND p.series_id = f.series_id AND p.ts = fp.ts
      AND {{where}}
    RETURNING fp.forecast_id
"""

RECOMPUTE = f"""
    WITH realised AS (
        SELECT fp.forecast_id, fp.mean, fp.actual, fp.lower, fp.upper
        FROM {ForecastPoint._meta.db_table} fp
        WHERE fp.forecast_id = ANY(%s) AND fp.actual IS NOT NULL
    ), errors AS (
        SELECT forecast_id, count(*) AS n,
               avg(CASE WHEN abs(actual) + abs(mean) > 0
                        THEN 200 * abs(actual - mean) / (abs(actual) + abs(mean)) ELSE 0 END) AS smape,
               avg(abs(actual - mean)) AS mae
        FROM realised GROUP BY forecast_id
    ), coverage AS (
        SELECT forecast_id, array_agg(share ORDER BY k) AS coverage FROM (
            SELECT forecast_id, k, avg((actual >= lower[k] AND actual <= upper[k])::int)::float8 AS share
            FROM realised, generate_subscripts(lower, 1) AS k
            GROUP BY forecast_id, k
        ) c GROUP BY forecast_id
    )
    UPDATE {Forecast._meta.db_table} f
    SET points_realised = e.n, smape = e.smape, mase = e.mae / nullif(f.mase_scale, 0),
        coverage = c.coverage, updated_at = now()
    FROM errors e JOIN coverage c USING (forecast_id)
    WHERE f.id = e.forecast_id
"""


def forecasts_track(
    *, forecast_ids: list[int] | None = None, series_ids: list[int] | None = None, since: datetime | None = None
) -> int:
    """Fill actuals for the given forecasts (or every forecast of the given series whose steps reach
    ``since`` or later) and recompute their figures; returns how many forecasts changed."""
    if forecast_ids is not None:
        where, params = "f.id = ANY(%s)", [list(forecast_ids)]
    elif series_ids is not None:
        where, params = "f.series_id = ANY(%s)", [list(series_ids)]
        if since is not None:
            where += " AND fp.ts >= %s"
            params.append(since)
    else:
        raise ValueError("give forecast_ids or series_ids")
    with connection.cursor() as cursor:
        cursor.execute(FILL_ACTUALS.format(where=where), params)
        touched = sorted({row[0] for row in cursor.fetchall()})
        if touched:
            cursor.execute(RECOMPUTE, [touched])
    return len(touched)
