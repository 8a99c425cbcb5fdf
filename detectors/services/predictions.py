"""Predicted incidents: a forecast whose bound crosses its config's threshold within the horizon.

At most one is open per (forecast config, series, direction). A later crossing forecast moves it (its
expected crossing time, band and forecast); a later forecast that no longer crosses closes it as "no
longer forecast". Only a series' latest forecast of the config decides, so events handled out of order
change nothing. Detection runs never see predicted incidents (they have no detector). Score and
severity: 1 and high when the forecast's mean crosses (expected), 0.5 and medium when only its bound does.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from detectors import signals
from detectors.models import Anomaly, CloseReason, IncidentKind, IncidentStatus
from detectors.services.incidents import incidents_insert
from forecasting.models import Forecast, ForecastCrossing
from ingestion.bulk import us_from_utc


@transaction.atomic
def predictions_from_crossings(*, crossing_ids: list[int]) -> list[int]:
    """Open or move the predicted incident of each crossing; returns the ids of new incidents."""
    crossings = list(ForecastCrossing.objects.filter(pk__in=crossing_ids).select_related("forecast", "series"))
    latest = _latest_trained(crossings)
    crossings = [c for c in crossings if c.forecast.trained_until >= latest[(c.config_id, c.series_id)]]
    open_now = _open_predictions([(c.config_id, c.series_id) for c in crossings])
    new = []
    for crossing in crossings:
        incident = open_now.get((crossing.config_id, crossing.series_id, crossing.direction))
        fields = _fields(crossing)
        if incident is None:
            new.append(Anomaly(kind=IncidentKind.PREDICTED, status=IncidentStatus.OPEN, **fields))
        elif incident.state.get("trained_until_us", 0) < fields["state"]["trained_until_us"]:
            Anomaly.objects.filter(pk=incident.pk, status=IncidentStatus.OPEN).update(
                **fields, updated_at=timezone.now()
            )
    created = [incident.pk for incident in incidents_insert(incidents=new)]
    signals.send_after_commit(signals.anomalies_created, sender=ForecastCrossing, run_id=None, anomaly_ids=created)
    return created


@transaction.atomic
def predictions_withdraw(*, forecast_ids: list[int]) -> list[int]:
    """Close the open predicted incidents that a newer forecast (of these) no longer crosses."""
    forecasts = list(Forecast.objects.filter(pk__in=forecast_ids).only("pk", "config_id", "series_id", "trained_until"))
    if not forecasts:
        return []
    latest = _latest_trained(forecasts)
    newest = {(f.config_id, f.series_id): f for f in forecasts if f.trained_until >= latest[(f.config_id, f.series_id)]}
    crossing = set(
        ForecastCrossing.objects.filter(forecast__in=[f.pk for f in newest.values()]).values_list(
            "forecast_id", "direction"
        )
    )
    closed = []
    for (config_id, series_id, direction), incident in _open_predictions(list(newest)).items():
        forecast = newest[(config_id, series_id)]
        if (forecast.pk, direction) in crossing or incident.state.get("trained_until_us", 0) >= us_from_utc(
            forecast.trained_until
        ):
            continue
        updated = Anomaly.objects.filter(pk=incident.pk, status=IncidentStatus.OPEN).update(
            status=IncidentStatus.CLOSED, close_reason=CloseReason.NO_LONGER_FORECAST,
            closed_ts=forecast.trained_until, last_seen=forecast.trained_until, updated_at=timezone.now(),
        )  # fmt: skip
        if updated:
            closed.append(incident.pk)
    signals.send_after_commit(signals.incident_resolved, sender=Forecast, run_id=None, anomaly_ids=closed)
    return closed


def _latest_trained(rows) -> dict[tuple[int, int], object]:
    """{(config, series): the trained_until of its latest stored forecast}, for the rows' pairs."""
    configs = {r.config_id for r in rows}
    series = {r.series_id for r in rows}
    found = (
        Forecast.objects.filter(config_id__in=configs, series_id__in=series)
        .values("config_id", "series_id")
        .annotate(last=Max("trained_until"))
    )
    return {(row["config_id"], row["series_id"]): row["last"] for row in found}


def _open_predictions(pairs: list[tuple[int, int]]) -> dict[tuple[int, int, str], Anomaly]:
    """{(config, series, direction): its open predicted incident}, locked, for the given pairs."""
    if not pairs:
        return {}
    found = Anomaly.objects.select_for_update().filter(
        kind=IncidentKind.PREDICTED,
        status=IncidentStatus.OPEN,
        forecast_config_id__in={c for c, _ in pairs},
        series_id__in={s for _, s in pairs},
    )
    wanted = set(pairs)
    return {
        (a.forecast_config_id, a.series_id, a.direction): a
        for a in found
        if (a.forecast_config_id, a.series_id) in wanted
    }


def _fields(crossing: ForecastCrossing) -> dict:
    expected_at, earliest = crossing.expected_at, crossing.bound_crosses_at
    past = "above" if crossing.direction == "above" else "below"
    text = (
        f"{crossing.series.metric} is forecast to go {past} {crossing.threshold:g} around "
        f"{expected_at:%Y-%m-%d %H:%M}, possibly from {earliest:%Y-%m-%d %H:%M} "
        f"(the {crossing.level}% bound reaches {crossing.extreme:.4g})."
    )
    return {
        "forecast_config_id": crossing.config_id, "forecast_id": crossing.forecast_id,
        "series_id": crossing.series_id, "direction": crossing.direction,
        "start_ts": expected_at, "end_ts": expected_at, "peak_ts": earliest,
        "last_seen": crossing.forecast.trained_until,
        "value": crossing.extreme, "expected": None, "lower": None, "upper": None,
        "score": 1.0 if crossing.mean_crosses_at else 0.5, "points": 0,
        "severity": "high" if crossing.mean_crosses_at else "medium",
        "explanation": {
            "text": text, "shape": "predicted_crossing", "direction": crossing.direction,
            "threshold": crossing.threshold, "level": crossing.level, "extreme": crossing.extreme,
            "expected_at": expected_at.isoformat(), "earliest_at": earliest.isoformat(),
            "mean_crosses": crossing.mean_crosses_at is not None, "forecast": crossing.forecast_id,
            "crossing": crossing.pk,
        },
        "state": {"trained_until_us": us_from_utc(crossing.forecast.trained_until), "crossing": crossing.pk},
    }  # fmt: skip
