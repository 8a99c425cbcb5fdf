"""Incidents to alerts and notifications: matching, grouping, cooldown, floors, quiet hours, escalation,
resolution, false positives and predicted incidents (services, no worker)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.utils import timezone

from alerts.models import Alert, AlertStatus, Notification
from alerts.services.alerting import alerts_open, alerts_resolve
from alerts.services.messages import message_render
from detectors.models import Anomaly, IncidentStatus
from tests.alerts.helpers import incident, rule, watched_detector, webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def detector(team):
    return watched_detector(team)


@pytest.fixture
def hook(team):
    return webhook(team, "http://127.0.0.1:9/hook")


def events(alert) -> list[str]:
    return sorted(alert.notifications.values_list("event", flat=True))


def test_it_opens_one_alert_with_one_notification_per_channel(team, detector, hook):
    second = webhook(team, "http://127.0.0.1:9/other", name="other")
    rule(team, [hook, second], detectors=[detector])
    found = incident(detector)
    ids = alerts_open(anomaly_ids=[found.pk])
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.OPEN and alert.count == 1 and alert.detector == detector
    assert sorted(Notification.objects.filter(pk__in=ids).values_list("channel", flat=True)) == [hook.pk, second.pk]
    assert alerts_open(anomaly_ids=[found.pk]) == [] and Notification.objects.count() == 2  # a rerun adds nothing


def test_it_matches_through_the_dataset_and_ignores_other_detectors(team, detector, hook):
    other = watched_detector(team, name="elsewhere")
    rule(team, [hook], datasets=[detector.dataset])
    alerts_open(anomaly_ids=[incident(detector).pk, incident(other).pk])
    assert list(Alert.objects.values_list("detector", flat=True)) == [detector.pk]


def test_it_skips_incidents_below_the_severity_or_the_floor(team, detector, hook):
    rule(team, [hook], detectors=[detector], min_severity="high", min_deviation=5.0)
    low = incident(detector, severity="medium")
    small = incident(detector, severity="critical", value=13.0, expected=10.0)
    assert alerts_open(anomaly_ids=[low.pk, small.pk]) == []
    assert not Alert.objects.exists()
    big = incident(detector, severity="critical", value=16.0, expected=10.0)
    assert len(alerts_open(anomaly_ids=[big.pk])) == 1


def test_it_groups_incidents_within_the_window_into_one_message_with_a_count(team, detector, hook):
    rule(team, [hook], detectors=[detector], grouping_window=timedelta(minutes=5))
    first = incident(detector)
    [notification_id] = alerts_open(anomaly_ids=[first.pk])
    later = [incident(detector), incident(detector, severity="critical")]
    assert alerts_open(anomaly_ids=[a.pk for a in later]) == []  # joined: no new message
    alert = Alert.objects.get()
    assert alert.count == 3 and alert.severity == "critical"
    notification = Notification.objects.get(pk=notification_id)
    assert notification.not_before == alert.group_until == first.created_at + timedelta(minutes=5)
    rendered = message_render(notification=notification)
    assert "3 incidents" in rendered.subject and rendered.payload["alert"]["count"] == 3


def test_it_opens_a_new_alert_after_the_window(team, detector, hook):
    rule(team, [hook], detectors=[detector], grouping_window=timedelta(minutes=5))
    alerts_open(anomaly_ids=[incident(detector).pk])
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        alerts_open(anomaly_ids=[incident(detector).pk])
    assert Alert.objects.count() == 2 and Notification.objects.count() == 2


def test_it_suppresses_new_alerts_during_the_cooldown(team, detector, hook):
    rule(team, [hook], detectors=[detector], cooldown=timedelta(hours=1))
    alerts_open(anomaly_ids=[incident(detector).pk])
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        assert alerts_open(anomaly_ids=[incident(detector).pk]) == []
        assert alerts_open(anomaly_ids=[incident(detector).pk]) == []
    suppressed = Alert.objects.get(status=AlertStatus.SUPPRESSED)
    assert suppressed.count == 2 and suppressed.suppressed_reason.startswith("cooldown until")
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert len(alerts_open(anomaly_ids=[incident(detector).pk])) == 1


def test_it_defers_messages_to_the_end_of_quiet_hours_in_the_rules_time_zone(team, detector, hook):
    rule(team, [hook], detectors=[detector], quiet_start=time(22), quiet_end=time(7), timezone="Europe/Paris")
    with time_machine.travel(datetime(2024, 6, 1, 21, 30, tzinfo=UTC)):  # 23:30 in Paris (UTC+2)
        [notification_id] = alerts_open(anomaly_ids=[incident(detector).pk])
    assert Notification.objects.get(pk=notification_id).not_before == datetime(2024, 6, 2, 5, 0, tzinfo=UTC)


def test_it_sends_at_most_one_message_per_severity_reached(team, detector, hook):
    rule(team, [hook], detectors=[detector])
    found = incident(detector, severity="medium")
    [opened] = alerts_open(anomaly_ids=[found.pk])
    Notification.objects.filter(pk=opened).update(status="sent")
    Anomaly.objects.filter(pk=found.pk).update(severity="high")
    assert len(alerts_open(anomaly_ids=[found.pk])) == 1
    assert alerts_open(anomaly_ids=[found.pk]) == []  # the same escalation handled twice
    Anomaly.objects.filter(pk=found.pk).update(severity="critical")
    alerts_open(anomaly_ids=[found.pk])
    assert events(Alert.objects.get()) == ["escalated:critical", "escalated:high", "opened"]


def test_it_opens_when_an_incident_reaches_the_rules_severity(team, detector, hook):
    rule(team, [hook], detectors=[detector], min_severity="high")
    found = incident(detector, severity="medium")
    assert alerts_open(anomaly_ids=[found.pk]) == []
    Anomaly.objects.filter(pk=found.pk).update(severity="high")
    assert len(alerts_open(anomaly_ids=[found.pk])) == 1
    assert events(Alert.objects.get()) == ["opened"]


def test_it_resolves_once_every_incident_closed_and_says_so(team, detector, hook):
    rule(team, [hook], detectors=[detector], grouping_window=timedelta(minutes=5))
    first, second = incident(detector), incident(detector)
    alerts_open(anomaly_ids=[first.pk, second.pk])
    Anomaly.objects.filter(pk=first.pk).update(status=IncidentStatus.CLOSED)
    assert alerts_resolve(anomaly_ids=[first.pk]) == []
    Anomaly.objects.filter(pk=second.pk).update(status=IncidentStatus.CLOSED)
    [resolved] = alerts_resolve(anomaly_ids=[second.pk])
    assert alerts_resolve(anomaly_ids=[second.pk]) == []
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.RESOLVED and events(alert) == ["opened", "resolved"]
    assert "Resolved" in message_render(notification=Notification.objects.get(pk=resolved)).text


def test_it_resolves_silently_when_the_rule_says_so(team, detector, hook):
    rule(team, [hook], detectors=[detector], notify_on_resolve=False)
    found = incident(detector)
    alerts_open(anomaly_ids=[found.pk])
    Anomaly.objects.filter(pk=found.pk).update(status=IncidentStatus.CLOSED)
    assert alerts_resolve(anomaly_ids=[found.pk]) == []
    assert Alert.objects.get().status == AlertStatus.RESOLVED


def test_it_skips_incidents_like_a_false_positive_and_says_why(team, detector, hook, monkeypatch):
    rule(team, [hook], detectors=[detector], skip_false_positives=True)
    twin, other = incident(detector), incident(detector)

    class Label:
        anomaly_id = 12345

    monkeypatch.setattr(
        "feedback.selectors.false_positive_match", lambda *, anomaly: Label if anomaly == twin else None
    )
    assert len(alerts_open(anomaly_ids=[twin.pk, other.pk])) == 1
    suppressed = Alert.objects.get(status=AlertStatus.SUPPRESSED)
    assert suppressed.suppressed_reason == "like incident 12345, labelled a false positive"
    assert list(suppressed.incidents.all()) == [twin]


def test_it_disregards_disabled_rules_and_channels(team, detector, hook):
    off = webhook(team, "http://127.0.0.1:9/off", name="off")
    off.enabled = False
    off.save()
    rule(team, [hook, off], detectors=[detector])
    rule(team, [hook], detectors=[detector], name="disabled", enabled=False)
    alerts_open(anomaly_ids=[incident(detector).pk])
    assert list(Notification.objects.values_list("channel", flat=True)) == [hook.pk]


def test_its_message_links_to_the_review_queue_and_explains_the_incident(team, detector, hook, settings):
    from feedback.selectors import review_url

    rule(team, [hook], detectors=[detector])
    found = incident(detector)
    [notification_id] = alerts_open(anomaly_ids=[found.pk])
    rendered = message_render(notification=Notification.objects.get(pk=notification_id))
    assert rendered.url == review_url(found.pk) and rendered.url in rendered.text and rendered.url in rendered.html
    assert "cpu rose to 20.0 where about 10.0 was expected." in rendered.text
    assert rendered.payload["incident"]["id"] == found.pk and rendered.payload["event"] == "opened"
    assert rendered.png.startswith(b"\x89PNG") and rendered.key == f"notification-{notification_id}"


def test_it_alerts_on_a_predicted_crossing_with_its_time_and_resolves_when_no_longer_forecast(team, detector, hook):
    from forecasting.models import ForecastConfig

    config = ForecastConfig.objects.create(dataset=detector.dataset, name="disk", threshold_above=90.0)
    rule(team, [hook], forecast_configs=[config])
    crossing = timezone.now() + timedelta(days=3, minutes=5)
    series = detector.dataset.series.first()
    predicted = Anomaly.objects.create(
        kind="predicted", forecast_config=config, series=series, direction="above", start_ts=crossing,
        end_ts=crossing, peak_ts=crossing - timedelta(hours=6), value=93.0, score=1.0, severity="high",
        status=IncidentStatus.OPEN, explanation={"text": "cpu is forecast to go above 90.", "threshold": 90.0},
    )  # fmt: skip
    [opened] = alerts_open(anomaly_ids=[predicted.pk])
    text = message_render(notification=Notification.objects.get(pk=opened)).text
    assert f"Expected crossing: {crossing:%Y-%m-%d %H:%M} UTC (in about 3 days)" in text
    Anomaly.objects.filter(pk=predicted.pk).update(status=IncidentStatus.CLOSED, close_reason="no_longer_forecast")
    [resolved] = alerts_resolve(anomaly_ids=[predicted.pk])
    rendered = message_render(notification=Notification.objects.get(pk=resolved))
    assert "A later forecast no longer crosses the threshold." in rendered.text
    assert rendered.payload["predicted_crossing_at"] == crossing.isoformat()


def test_a_predicted_incident_below_the_floor_distance_to_its_threshold_is_skipped(team, detector, hook):
    from forecasting.models import ForecastConfig

    config = ForecastConfig.objects.create(dataset=detector.dataset, name="disk", threshold_above=90.0)
    rule(team, [hook], datasets=[detector.dataset], min_deviation=5.0)
    at = timezone.now() + timedelta(days=1)
    predicted = Anomaly.objects.create(
        kind="predicted", forecast_config=config, series=detector.dataset.series.first(), direction="above",
        start_ts=at, end_ts=at, peak_ts=at, value=91.0, score=1.0, severity="high", status=IncidentStatus.OPEN,
        explanation={"text": "forecast to go above 90.", "threshold": 90.0},
    )  # fmt: skip
    assert alerts_open(anomaly_ids=[predicted.pk]) == []


def test_an_incident_event_is_handled_once_and_swept_when_its_task_was_lost(team, detector, hook, settings):
    from alerts.models import IncidentEvent
    from alerts.services.alerting import incident_event_handle, incident_event_record, incident_events_redispatch_due

    rule(team, [hook], detectors=[detector])
    event = incident_event_record(event="opened", anomaly_ids=[incident(detector).pk])
    settings.ALERTS_REDISPATCH_SECONDS = 10
    assert incident_events_redispatch_due() == []  # just enqueued
    IncidentEvent.objects.filter(pk=event.pk).update(enqueued_at=timezone.now() - timedelta(seconds=30))
    assert incident_events_redispatch_due() == [event.pk]  # its task did not run: enqueue it again
    assert len(incident_event_handle(event_id=event.pk)) == 1
    assert incident_event_handle(event_id=event.pk) == []  # the second copy finds it handled
    IncidentEvent.objects.filter(pk=event.pk).update(enqueued_at=timezone.now() - timedelta(seconds=30))
    assert incident_events_redispatch_due() == [] and Notification.objects.count() == 1


def test_an_incident_the_triage_holds_back_alerts_only_once_released(team, detector, hook):
    from detectors.models import ReviewStatus

    rule(team, [hook], detectors=[detector])
    held = incident(detector)
    Anomaly.objects.filter(pk=held.pk).update(review_status=ReviewStatus.SUPPRESSED)
    assert alerts_open(anomaly_ids=[held.pk]) == [] and not Alert.objects.exists()
    Anomaly.objects.filter(pk=held.pk).update(review_status=ReviewStatus.UNREVIEWED)  # released as it grew
    assert len(alerts_open(anomaly_ids=[held.pk])) == 1


def test_an_incident_labelled_expected_or_false_positive_is_never_raised_nor_escalated(team, detector, hook):
    from detectors.models import ReviewStatus

    rule(team, [hook], detectors=[detector])
    expected = incident(detector, severity="medium")
    Anomaly.objects.filter(pk=expected.pk).update(review_status=ReviewStatus.EXPECTED)
    assert alerts_open(anomaly_ids=[expected.pk]) == [] and not Alert.objects.exists()

    alerted = incident(detector, severity="medium")
    assert len(alerts_open(anomaly_ids=[alerted.pk])) == 1
    Notification.objects.update(status="sent")  # the opening message went: an escalation would send another
    Anomaly.objects.filter(pk=alerted.pk).update(review_status=ReviewStatus.FALSE_POSITIVE, severity="critical")
    assert alerts_open(anomaly_ids=[alerted.pk]) == []  # labelled false positive: its escalation stays quiet
    assert Notification.objects.count() == 1
