"""Predictive alerts through forecasting's own path: a forecast run predicts a crossing, detection opens a
predicted incident and signals it, alerts notify with the expected crossing time; a later forecast that no
longer crosses resolves it."""

from __future__ import annotations

import pytest

from alerts.models import Alert, AlertStatus, Notification
from alerts.services import alerting
from alerts.services.messages import message_render
from detectors.models import Anomaly, IncidentKind
from forecasting.models import RunTrigger
from forecasting.services import runs
from forecasting.services.configs import forecast_config_update
from tests.alerts.helpers import rule, webhook
from tests.forecasting.helpers import dataset_with_series, hourly_frame, load, make_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def handled(monkeypatch):
    """The alerts task, run in this process: the notification ids each event made."""
    made = []
    monkeypatch.setattr("alerts.tasks.on_incidents.delay",
                        lambda event_id: made.append(alerting.incident_event_handle(event_id=event_id)))  # fmt: skip
    return made


def forecast(config, capture):
    with capture(execute=True):
        runs.run_execute(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL))


def test_a_forecast_crossing_alerts_with_its_time_and_resolves_when_withdrawn(
    team, handled, django_capture_on_commit_callbacks
):
    dataset = dataset_with_series(team, [hourly_frame()])
    config = make_config(dataset, metric="cpu", threshold_above=58.0, threshold_level=95)
    rule(team, [webhook(team, "https://example.com/hook")], forecast_configs=[config], min_severity="medium")
    forecast(config, django_capture_on_commit_callbacks)
    incident = Anomaly.objects.get(kind=IncidentKind.PREDICTED)
    [[opened]] = handled
    text = message_render(notification=Notification.objects.get(pk=opened)).text
    assert f"Expected crossing: {incident.start_ts:%Y-%m-%d %H:%M} UTC" in text
    assert incident.explanation["text"] in text

    forecast_config_update(config=config, threshold_above=1000.0)
    load(dataset, hourly_frame(start="2024-01-22", n=24))
    forecast(config, django_capture_on_commit_callbacks)
    [_, [resolved]] = handled
    assert Notification.objects.get(pk=resolved).event == "resolved"
    assert Alert.objects.get().status == AlertStatus.RESOLVED
