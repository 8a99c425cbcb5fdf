"""A notification rendered into a channel-neutral Message: subject, text, HTML, JSON payload, plot."""

from __future__ import annotations

import dataclasses

from django.template.loader import render_to_string
from django.utils import timezone

from alerts.channels.base import Message
from alerts.models import Notification
from alerts.plots import incident_png
from detectors.models import Anomaly, IncidentKind
from ingestion.selectors import series_recent_points

PLOT_POINTS = 300
EVENT_WORDS = {"opened": "opened", "resolved": "resolved", "test": "test"}


ALL_PARTS = frozenset({"subject", "text", "html", "payload", "png"})


def message_render(*, notification: Notification, parts=ALL_PARTS, cache: dict | None = None) -> Message:
    """The message, with only the `parts` its channel uses (a webhook needs no HTML, only email a plot).

    `cache` shares the rendering of one alert event between its channels (only the key differs).
    """
    if notification.alert_id is None:
        return _test_message(notification)
    cache = {} if cache is None else cache
    key = f"notification-{notification.pk}"
    common = cache.get((notification.alert_id, notification.event, parts))
    if common is None:
        common = cache[(notification.alert_id, notification.event, parts)] = _render(notification, parts)
    payload = {**common.payload, "idempotency_key": key} if common.payload else {}
    return dataclasses.replace(common, key=key, payload=payload)


def _render(notification: Notification, parts) -> Message:
    alert = notification.alert
    incident = _headline(alert)
    context = {
        "event": notification.event, "event_word": _event_word(notification.event), "alert": alert,
        "rule": alert.rule, "incident": incident, "source": _source(incident), "url": _review_url(incident),
        "text": incident.explanation.get("text") or f"{incident.severity} incident", "in_words": _in_words(incident),
        "predicted": incident.kind == IncidentKind.PREDICTED,
    }  # fmt: skip
    subject = " ".join(render_to_string("alerts/subject.txt", context).split()) if "subject" in parts else ""
    html_context = {**context, "subject": subject}
    return Message(
        key="", event=notification.event, subject=subject,
        text=render_to_string("alerts/message.txt", context).strip() if "text" in parts else "",
        html=render_to_string("alerts/message.html", html_context) if "html" in parts else "",
        payload=_payload(notification, alert, incident, context) if "payload" in parts else {},
        url=context["url"], png=_plot(incident) if "png" in parts else None, severity=alert.severity,
    )  # fmt: skip


def _headline(alert) -> Anomaly:
    """The incident a message is about: the highest scored of the alert's (the latest on a tie)."""
    return (
        alert.incidents.select_related("series", "detector", "forecast_config")
        .order_by("-score", "-created_at").first()
    )  # fmt: skip


def _event_word(event: str) -> str:
    if event.startswith("escalated:"):
        return f"escalated to {event.partition(':')[2]}"
    return EVENT_WORDS.get(event, event)


def _source(incident: Anomaly) -> str:
    owner = incident.detector or incident.forecast_config
    series = incident.series
    if series is None:
        return owner.name
    labels = ", ".join(f"{k}={v}" for k, v in sorted(series.labels.items()))
    return f"{owner.name}: {series.metric}" + (f" {labels}" if labels else "")


def _review_url(incident: Anomaly) -> str:
    from feedback.selectors import review_url

    return review_url(incident.pk)


def _in_words(incident: Anomaly) -> str:
    """Predicted: "in about 3 days" until the expected crossing."""
    if incident.kind != IncidentKind.PREDICTED:
        return ""
    seconds = (incident.start_ts - timezone.now()).total_seconds()
    if seconds <= 0:
        return "now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size)
            return f"in about {count} {unit}{'s' if count != 1 else ''}"
    return "in less than a minute"


def _payload(notification: Notification, alert, incident: Anomaly, context: dict) -> dict:
    series = incident.series
    return {
        "event": notification.event,
        "alert": {"id": alert.pk, "rule": alert.rule.name, "rule_id": alert.rule_id, "count": alert.count,
                  "severity": alert.severity, "status": alert.status, "first_seen": alert.first_seen.isoformat(),
                  "last_seen": alert.last_seen.isoformat()},
        "incident": {"id": incident.pk, "kind": incident.kind, "detector": incident.detector_id,
                     "forecast_config": incident.forecast_config_id, "series": incident.series_id,
                     "metric": series.metric if series else None, "labels": series.labels if series else None,
                     "start_ts": incident.start_ts.isoformat(), "peak_ts": incident.peak_ts.isoformat(),
                     "end_ts": incident.end_ts.isoformat(), "status": incident.status, "value": incident.value,
                     "expected": incident.expected, "lower": incident.lower, "upper": incident.upper,
                     "score": incident.score, "severity": incident.severity, "text": context["text"],
                     "stored_at": incident.created_at.isoformat()},
        "predicted_crossing_at": incident.start_ts.isoformat() if context["predicted"] else None,
        "summary": context["text"], "review_url": context["url"],
    }  # fmt: skip


def _plot(incident: Anomaly) -> bytes | None:
    if incident.series is None:
        return None
    points = series_recent_points(series=incident.series, limit=PLOT_POINTS)
    if incident.kind == IncidentKind.PREDICTED:
        return incident_png(points, threshold=incident.explanation.get("threshold"))
    band = (incident.lower, incident.upper) if incident.lower is not None and incident.upper is not None else None
    return incident_png(points, span=(incident.start_ts, incident.end_ts), band=band)


def _test_message(notification: Notification) -> Message:
    channel = notification.channel
    text = f"A test message of the channel {channel.name!r}, sent at {timezone.now():%Y-%m-%d %H:%M:%S} UTC."
    return Message(
        key=f"notification-{notification.pk}", event="test", subject=f"Test message: {channel.name}", text=text,
        html=render_to_string("alerts/test.html", {"text": text}),
        payload={"idempotency_key": f"notification-{notification.pk}", "event": "test", "summary": text},
        severity="low",
    )  # fmt: skip
