"""Predicted crossings: a new forecast whose bound passes its config's threshold within the horizon.

One set-based statement per direction over the new forecasts' points; the rows are unique per
(forecast, direction), so a chunk that runs twice predicts nothing twice.
"""

from __future__ import annotations

from django.db import connection, transaction

from forecasting import signals
from forecasting.models import Forecast, ForecastConfig, ForecastCrossing, ForecastPoint

INSERT_CROSSINGS = f"""
    INSERT INTO {ForecastCrossing._meta.db_table}
        (forecast_id, config_id, series_id, direction, threshold, level, bound_crosses_at, mean_crosses_at,
         extreme, created_at, updated_at)
    SELECT f.id, f.config_id, f.series_id, %(direction)s, %(threshold)s, %(level)s,
           min(p.ts) FILTER (WHERE {{bound}} {{op}} %(threshold)s),
           min(p.ts) FILTER (WHERE p.mean {{op}} %(threshold)s),
           {{extreme}}({{bound}}), now(), now()
    FROM {Forecast._meta.db_table} f
    JOIN {ForecastPoint._meta.db_table} p ON p.forecast_id = f.id
    WHERE f.id = ANY(%(ids)s) AND array_position(f.levels, %(level)s::smallint) IS NOT NULL
    GROUP BY f.id
    HAVING bool_or({{bound}} {{op}} %(threshold)s)
    ON CONFLICT ON CONSTRAINT forecast_crossing_unique_direction DO NOTHING
    RETURNING id
"""
BOUNDS = {
    "above": ("p.upper[array_position(f.levels, %(level)s::smallint)]", ">", "max"),
    "below": ("p.lower[array_position(f.levels, %(level)s::smallint)]", "<", "min"),
}


def threshold_level(config: ForecastConfig) -> int:
    return config.threshold_level if config.threshold_level in config.levels else min(config.levels)


def crossings_detect(*, config: ForecastConfig, forecast_ids: list[int]) -> list[int]:
    """Store the crossings of the given forecasts (of ``config``) and announce them after commit."""
    thresholds = {"above": config.threshold_above, "below": config.threshold_below}
    created: list[int] = []
    with connection.cursor() as cursor:
        for direction, threshold in thresholds.items():
            if threshold is None or not forecast_ids:
                continue
            bound, op, extreme = BOUNDS[direction]
            sql = INSERT_CROSSINGS.format(bound=bound, op=op, extreme=extreme)
            params = {"direction": direction, "threshold": threshold, "level": threshold_level(config),
                      "ids": list(forecast_ids)}  # fmt: skip
            cursor.execute(sql, params)
            created += [row[0] for row in cursor.fetchall()]
    if created:
        transaction.on_commit(lambda: signals.crossings_predicted.send(sender=ForecastCrossing, crossing_ids=created))
    return created
