"""Forecast-based detection: a stored forecast's band as a detector's expectation, and predicted incidents."""

from datetime import timedelta

import pandas as pd
import pytest

from detectors import signals as detector_signals
from detectors.models import Anomaly, IncidentKind, IncidentStatus
from detectors.models import RunTrigger as DetectionTrigger
from detectors.services.configs import detector_create
from detectors.services.runs import run_create as detection_run_create
from detectors.services.runs import run_execute as detection_run_execute
from forecasting.models import Forecast, ForecastModelVersion, ForecastPoint, RunTrigger
from forecasting.services import runs
from forecasting.services.configs import forecast_config_update
from ingestion.models import Series
from tests.forecasting.helpers import dataset_with_series, hourly_frame, load, make_config, utc
from tests.ingestion.helpers import make_dataset

pytestmark = pytest.mark.django_db

INSIDE, OUTSIDE = utc("2024-01-18T03:00"), utc("2024-01-18T18:00")  # both spiked; the forecast expects one
SPIKE = 40.0


@pytest.fixture
def spiked(team):
    frame = hourly_frame()
    frame.loc[frame["ts"].isin([pd.Timestamp(INSIDE), pd.Timestamp(OUTSIDE)]), "value"] += SPIKE
    return dataset_with_series(team, [frame]), frame


def _store_forecast(config, series, frame, *, trained_until, hours: int, half_width: float = 3.0):
    """A forecast of the actual values (less the spike at OUTSIDE), 95% band +- half_width."""
    version, _ = ForecastModelVersion.objects.get_or_create(config=config, version=1, defaults={"method": "manual"})
    forecast = Forecast.objects.create(
        config=config, series=series, model_version=version, made_at=trained_until, trained_until=trained_until,
        horizon=hours, levels=[80, 95], training_size=100, mase_scale=1.0,
    )  # fmt: skip
    actual = frame.set_index("ts")["value"]
    for step in range(1, hours + 1):
        ts = trained_until + timedelta(hours=step)
        mean = float(actual[pd.Timestamp(ts)]) - (SPIKE if ts == OUTSIDE else 0.0)
        ForecastPoint.objects.create(
            forecast=forecast, ts=ts, mean=mean, lower=[mean - half_width / 2, mean - half_width],
            upper=[mean + half_width / 2, mean + half_width],
        )  # fmt: skip
    return forecast


def _alarms(detector) -> set:
    return set(Anomaly.objects.filter(detector=detector).values_list("start_ts", flat=True))


def test_a_detector_with_a_forecast_flags_a_point_outside_its_band_and_not_one_inside(spiked):
    dataset, frame = spiked
    series = Series.objects.get(dataset=dataset)
    config = make_config(dataset, metric="cpu")
    _store_forecast(config, series, frame, trained_until=utc("2024-01-17T23:00"), hours=24)
    plain = detector_create(dataset=dataset, name="plain", algorithm="zscore", close_after=3)
    banded = detector_create(dataset=dataset, name="banded", algorithm="zscore", close_after=3, forecast_config=config,
                             forecast_level=95)  # fmt: skip
    for detector in (plain, banded):
        run = detection_run_create(detector=detector, trigger=DetectionTrigger.BACKFILL,
                                   start=utc("2024-01-15"), end=utc("2024-01-19"))  # fmt: skip
        detection_run_execute(run=run)
    assert {INSIDE, OUTSIDE} <= _alarms(plain)  # the algorithm alone flags both spikes
    assert OUTSIDE in _alarms(banded) and INSIDE not in _alarms(banded)  # the forecast expected one of them
    incident = Anomaly.objects.get(detector=banded, start_ts=OUTSIDE)
    assert incident.explanation["expected_from"] == "forecast"
    assert "forecast" in incident.explanation["text"]
    point = ForecastPoint.objects.get(forecast__config=config, ts=OUTSIDE)
    assert (incident.lower, incident.upper) == (point.lower[1], point.upper[1])


def test_a_detector_refuses_a_forecast_config_of_another_dataset_or_team(owner_client, team, other_team, spiked):
    dataset, _ = spiked
    elsewhere = make_config(make_dataset(team, name="other"), name="other forecast")
    foreign = make_config(make_dataset(other_team, name="theirs"), name="their forecast")
    for config in (elsewhere, foreign):
        body = {"dataset": dataset.pk, "name": f"with {config.pk}", "forecast_config": config.pk}
        response = owner_client.post("/api/v1/detectors", body, format="json")
        assert response.status_code == 400, response.json()
        assert "forecast_config" in str(response.json())
    own = make_config(dataset, name="own forecast")
    body = {"dataset": dataset.pk, "name": "ok", "forecast_config": own.pk, "forecast_level": 90}
    response = owner_client.post("/api/v1/detectors", body, format="json")
    assert response.status_code == 400 and response.json()["field"] == "forecast_level"
    body["forecast_level"] = 80
    response = owner_client.post("/api/v1/detectors", body, format="json")
    assert response.status_code == 201 and response.json()["forecast_config"] == own.pk


def _run(config, capture):
    with capture(execute=True):
        runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))


def test_crossings_open_move_and_withdraw_one_predicted_incident(
    hourly_dataset, django_capture_on_commit_callbacks, owner_client, outsider_client
):
    created, resolved = [], []
    detector_signals.anomalies_created.connect(lambda sender, anomaly_ids, **kw: created.extend(anomaly_ids),
                                               weak=False, dispatch_uid="t-pred-created")  # fmt: skip
    detector_signals.incident_resolved.connect(lambda sender, anomaly_ids, **kw: resolved.extend(anomaly_ids),
                                               weak=False, dispatch_uid="t-pred-resolved")  # fmt: skip
    try:
        config = make_config(hourly_dataset, metric="cpu", threshold_above=58.0, threshold_level=95)
        _run(config, django_capture_on_commit_callbacks)
        incident = Anomaly.objects.get(kind=IncidentKind.PREDICTED)
        crossing = config.crossings.get()
        assert created == [incident.pk] and incident.status == IncidentStatus.OPEN
        assert (incident.forecast_config, incident.direction, incident.detector) == (config, "above", None)
        assert incident.start_ts == crossing.expected_at and incident.forecast_id == crossing.forecast_id

        load(hourly_dataset, hourly_frame(start="2024-01-22", n=24))  # a day later, still peaking past 58
        _run(config, django_capture_on_commit_callbacks)
        assert Anomaly.objects.filter(kind=IncidentKind.PREDICTED).count() == 1 and created == [incident.pk]
        later = config.crossings.order_by("-forecast__trained_until").first()
        incident.refresh_from_db()
        assert incident.status == IncidentStatus.OPEN and incident.forecast_id == later.forecast_id
        assert incident.start_ts == later.expected_at > crossing.expected_at  # moved to the later forecast's

        listed = owner_client.get("/api/v1/anomalies?kind=predicted").json()["results"]
        assert [a["id"] for a in listed] == [incident.pk] and listed[0]["direction"] == "above"
        assert owner_client.get("/api/v1/anomalies?kind=observed").json()["results"] == []
        assert outsider_client.get("/api/v1/anomalies?kind=predicted").json()["results"] == []

        forecast_config_update(config=config, threshold_above=1000.0)
        load(hourly_dataset, hourly_frame(start="2024-01-23", n=24))
        _run(config, django_capture_on_commit_callbacks)
        incident.refresh_from_db()
        assert incident.status == IncidentStatus.CLOSED and incident.close_reason == "no_longer_forecast"
        assert resolved == [incident.pk]
        assert incident.closed_ts == Forecast.objects.filter(config=config).latest("trained_until").trained_until
    finally:
        detector_signals.anomalies_created.disconnect(dispatch_uid="t-pred-created")
        detector_signals.incident_resolved.disconnect(dispatch_uid="t-pred-resolved")


def test_detection_runs_ignore_predicted_incidents(hourly_dataset, django_capture_on_commit_callbacks):
    config = make_config(hourly_dataset, metric="cpu", threshold_above=58.0)
    _run(config, django_capture_on_commit_callbacks)
    detector = detector_create(dataset=hourly_dataset, name="watch", metric="cpu", algorithm="zscore")
    load(hourly_dataset, hourly_frame(start="2024-01-22", n=24))
    detection_run_execute(run=detection_run_create(detector=detector, trigger=DetectionTrigger.MANUAL))
    assert Anomaly.objects.filter(kind=IncidentKind.PREDICTED, status=IncidentStatus.OPEN).count() == 1
