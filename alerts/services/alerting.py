"""Incidents to alerts to notifications: which rules an incident matches, which alert it joins, what is sent.

An incident joins at most one alert per rule (AlertIncident is unique per rule and incident), so a task
that runs twice adds nothing. Rules that match are locked while their alerts change: two workers handling
incidents of the same rule at once wait for each other instead of opening two alerts.

Per rule and source (a detector, or a forecast config), an incident:
- joins the latest alert whose `group_until` has not passed when the incident was stored: an open alert
  within its grouping window (one message, sent when the window ends, with the count), or an alert kept
  suppressed by the cooldown;
- else opens a new alert, suppressed while the cooldown of the previous notified alert lasts.
Incidents below the rule's severity or floor match nothing (an escalation may match them later); those
near-identical to a false positive open a suppressed alert, so the reason is visible.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Prefetch, Q
from django.utils import timezone

from alerts.models import (
    Alert,
    AlertIncident,
    AlertRule,
    AlertStatus,
    Channel,
    IncidentEvent,
    Notification,
    NotificationStatus,
)
from alerts.services.quiet import quiet_until
from detectors.models import SEVERITY_RANK, Anomaly, IncidentKind, IncidentStatus, ReviewStatus

OPENED, RESOLVED = "opened", "resolved"
EVENTS = ("opened", "escalated", "resolved")


def incident_event_record(*, event: str, anomaly_ids: list[int]) -> IncidentEvent:
    """Keep what detection signalled until it is handled (see incident_event_handle)."""
    if event not in EVENTS:
        raise ValueError(f"unknown incident event {event!r}")
    return IncidentEvent.objects.create(event=event, anomaly_ids=anomaly_ids, enqueued_at=timezone.now())


@transaction.atomic
def incident_event_handle(*, event_id: int) -> list[int]:
    """Alerts for a recorded event, once: a second task for it (redelivered, or re-enqueued by the sweep)
    waits for the first's lock, then finds it handled. Returns the ids of the notifications to send."""
    row = IncidentEvent.objects.select_for_update().filter(pk=event_id, processed_at=None).first()
    if row is None:
        return []
    handler = alerts_resolve if row.event == RESOLVED else alerts_open
    notification_ids = handler(anomaly_ids=row.anomaly_ids)
    IncidentEvent.objects.filter(pk=row.pk).update(processed_at=timezone.now())
    return notification_ids


def incident_events_redispatch_due() -> list[int]:
    """Events not handled ALERTS_REDISPATCH_SECONDS after they were last enqueued: marked enqueued now, for
    the caller to enqueue again."""
    table = IncidentEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET enqueued_at = clock_timestamp()
            WHERE id IN (
                SELECT id FROM {table}
                WHERE processed_at IS NULL
                  AND COALESCE(enqueued_at, created_at) < clock_timestamp() - make_interval(secs => %s)
                ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED
            )
            RETURNING id
            """,
            [settings.ALERTS_REDISPATCH_SECONDS],
        )
        return sorted(row[0] for row in cursor.fetchall())


def escalated(severity: str) -> str:
    return f"escalated:{severity}"


@transaction.atomic
def alerts_open(*, anomaly_ids: list[int]) -> list[int]:
    """New incidents, or incidents whose severity rose: open or join alerts, escalate the ones they are in.

    Returns the ids of the notifications to send.
    """
    incidents = list(
        Anomaly.objects.filter(pk__in=anomaly_ids).select_related("detector", "forecast_config").order_by("pk")
    )
    rules = _rules_locked(incidents)
    if not rules:
        return []
    joined = _joined(rules, incidents)
    alerts: set[int] = set()
    for incident in incidents:
        for rule in rules:
            if not _source_matches(rule, incident):
                continue
            alert = joined.get((rule.pk, incident.pk))
            if alert is not None:
                alerts.update(_escalate(alert, incident))
            elif _passes(rule, incident) and (notified := _join_or_open(rule, incident)) is not None:
                alerts.add(notified)
    return _pending(alerts)


@transaction.atomic
def alerts_resolve(*, anomaly_ids: list[int]) -> list[int]:
    """Closed incidents: an alert all of whose incidents are closed is resolved (one message if asked)."""
    alert_ids = set(AlertIncident.objects.filter(anomaly_id__in=anomaly_ids).values_list("alert_id", flat=True))
    alerts = Alert.objects.select_for_update().filter(pk__in=alert_ids, status=AlertStatus.OPEN).order_by("pk")
    resolved = []
    for alert in alerts.select_related("rule"):
        if alert.incidents.filter(status=IncidentStatus.OPEN).exists():
            continue
        Alert.objects.filter(pk=alert.pk).update(status=AlertStatus.RESOLVED, resolved_at=timezone.now())
        if alert.rule.notify_on_resolve and alert.notifications.filter(event=OPENED).exists():
            _notify(alert, alert.rule, RESOLVED, timezone.now())
            resolved.append(alert.pk)
    return _pending(resolved, event=RESOLVED)


def _rules_locked(incidents: list[Anomaly]) -> list[AlertRule]:
    """Enabled rules whose sources include any of the incidents', locked in id order (no deadlocks)."""
    detectors = {i.detector_id for i in incidents if i.detector_id}
    configs = {i.forecast_config_id for i in incidents if i.forecast_config_id}
    datasets = {i.detector.dataset_id for i in incidents if i.detector_id}
    datasets |= {i.forecast_config.dataset_id for i in incidents if i.forecast_config_id}
    matching = AlertRule.objects.filter(enabled=True).filter(
        Q(detectors__in=detectors) | Q(forecast_configs__in=configs) | Q(datasets__in=datasets)
    )
    ids = sorted(set(matching.values_list("pk", flat=True)))
    enabled_channels = Prefetch("channels", queryset=Channel.objects.filter(enabled=True).only("pk"))
    rules = list(
        AlertRule.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk")
        .prefetch_related("detectors", "datasets", "forecast_configs", enabled_channels)
    )  # fmt: skip
    for rule in rules:
        rule.source_ids = {
            "detectors": {d.pk for d in rule.detectors.all()},
            "datasets": {d.pk for d in rule.datasets.all()},
            "configs": {c.pk for c in rule.forecast_configs.all()},
            "channels": [c.pk for c in rule.channels.all()],
        }
    return rules


def _source_matches(rule: AlertRule, incident: Anomaly) -> bool:
    ids = rule.source_ids
    if incident.kind == IncidentKind.PREDICTED:
        return incident.forecast_config_id in ids["configs"] or incident.forecast_config.dataset_id in ids["datasets"]
    return incident.detector_id in ids["detectors"] or incident.detector.dataset_id in ids["datasets"]


# Never raised, nor escalated: held back (the triage or a repeated false positive), or an analyst said it is
# expected or a false positive. A held-back incident that is released comes again as created.
QUIET = (ReviewStatus.SUPPRESSED, ReviewStatus.EXPECTED, ReviewStatus.FALSE_POSITIVE)


def _passes(rule: AlertRule, incident: Anomaly) -> bool:
    """The rule's severity and absolute floor (not the false-positive check: that one is recorded), for an
    incident that may be raised at all."""
    if incident.review_status in QUIET:
        return False
    if SEVERITY_RANK[incident.severity] < SEVERITY_RANK[rule.min_severity]:
        return False
    deviation = _deviation(incident)
    return rule.min_deviation is None or deviation is None or deviation >= rule.min_deviation


def _deviation(incident: Anomaly) -> float | None:
    """How far the incident's value is from its expectation (predicted: the bound from the threshold)."""
    if not isinstance(incident.value, int | float):
        return None
    if incident.kind == IncidentKind.PREDICTED:
        threshold = incident.explanation.get("threshold")
        return abs(incident.value - threshold) if isinstance(threshold, int | float) else None
    return abs(incident.value - incident.expected) if incident.expected is not None else None


def _joined(rules: list[AlertRule], incidents: list[Anomaly]) -> dict[tuple[int, int], Alert]:
    """{(rule, incident): the alert it already joined}, alerts locked."""
    links = AlertIncident.objects.filter(rule__in=rules, anomaly__in=incidents).values_list(
        "rule_id", "anomaly_id", "alert_id"
    )
    links = list(links)
    alerts = Alert.objects.select_for_update().select_related("rule").in_bulk([a for _, _, a in links])
    return {(rule, anomaly): alerts[alert] for rule, anomaly, alert in links}


def _join_or_open(rule: AlertRule, incident: Anomaly) -> int | None:
    """Join or open an alert; the id of an alert that opened with messages to send, else None."""
    source = {"detector_id": incident.detector_id, "forecast_config_id": incident.forecast_config_id}
    stored = incident.created_at
    if (suppressed := _false_positive(rule, incident)) is not None:
        _open(rule, incident, source, stored, group_until=stored, suppressed=suppressed)
        return None
    # A false positive's own alert never groups (its window ends when it starts).
    joinable = Alert.objects.filter(rule=rule, **source, group_until__gte=stored).exclude(first_seen=F("group_until"))
    latest = joinable.select_for_update().order_by("-first_seen").first()
    if latest is not None:
        _join(latest, incident)
        return None
    cooling = (
        Alert.objects.filter(rule=rule, **source, first_seen__gt=stored - rule.cooldown)
        .exclude(status=AlertStatus.SUPPRESSED).order_by("-first_seen").first()
    ) if rule.cooldown else None  # fmt: skip
    if cooling is not None:
        until = cooling.first_seen + rule.cooldown
        _open(rule, incident, source, stored, group_until=until, suppressed=f"cooldown until {until:%H:%M:%S}")
        return None
    alert = _open(rule, incident, source, stored, group_until=stored + rule.grouping_window)
    _notify(alert, rule, OPENED, alert.group_until)
    return alert.pk


def _false_positive(rule: AlertRule, incident: Anomaly) -> str | None:
    if not rule.skip_false_positives:
        return None
    from feedback.selectors import false_positive_match

    label = false_positive_match(anomaly=incident)
    return None if label is None else f"like incident {label.anomaly_id}, labelled a false positive"


def _open(rule, incident, source, stored: datetime, *, group_until: datetime, suppressed: str = "") -> Alert:
    alert = Alert.objects.create(
        rule=rule, **source, severity=incident.severity, count=1, first_seen=stored, last_seen=stored,
        group_until=group_until, suppressed_reason=suppressed,
        status=AlertStatus.SUPPRESSED if suppressed else _status_of([incident]),
    )  # fmt: skip
    AlertIncident.objects.create(alert=alert, anomaly=incident, rule=rule)
    return alert


def _status_of(incidents: list[Anomaly]) -> str:
    # An incident closed by the time it is alerted on (a table row's, or a race with its resolution)
    # makes a resolved alert: the opening message says so, no second message follows.
    return AlertStatus.OPEN if any(i.status == IncidentStatus.OPEN for i in incidents) else AlertStatus.RESOLVED


def _join(alert: Alert, incident: Anomaly) -> None:
    AlertIncident.objects.create(alert=alert, anomaly=incident, rule=alert.rule)
    alert.count += 1
    alert.last_seen = max(alert.last_seen, incident.created_at)
    if SEVERITY_RANK[incident.severity] > SEVERITY_RANK[alert.severity]:
        alert.severity = incident.severity
    if alert.status == AlertStatus.RESOLVED and incident.status == IncidentStatus.OPEN:
        alert.status, alert.resolved_at = AlertStatus.OPEN, None
    alert.save(update_fields=["count", "last_seen", "severity", "status", "resolved_at", "updated_at"])


def _escalate(alert: Alert, incident: Anomaly) -> list[int]:
    """A higher severity of an incident already alerted on: one message per severity reached, unless
    the opening message has not gone yet (it will say the new severity)."""
    if SEVERITY_RANK[incident.severity] <= SEVERITY_RANK[alert.severity] or incident.review_status in QUIET:
        return []
    Alert.objects.filter(pk=alert.pk).update(severity=incident.severity, updated_at=timezone.now())
    alert.severity = incident.severity
    if (
        alert.status != AlertStatus.OPEN
        or alert.notifications.filter(event=OPENED).exclude(status=NotificationStatus.PENDING).count() == 0
    ):
        return []
    _notify(alert, alert.rule, escalated(incident.severity), timezone.now())
    return [alert.pk]


def _notify(alert: Alert, rule: AlertRule, event: str, not_before: datetime) -> None:
    known = getattr(rule, "source_ids", None)  # set by _rules_locked
    channel_ids = known["channels"] if known else rule.channels.filter(enabled=True).values_list("pk", flat=True)
    when = quiet_until(rule, not_before) or not_before
    Notification.objects.bulk_create(
        [Notification(alert=alert, channel_id=channel, event=event, not_before=when) for channel in channel_ids],
        ignore_conflicts=True,
    )


def _pending(alert_ids, event: str | None = None) -> list[int]:
    """Notifications of these alerts never enqueued yet (the caller sends them once this commits)."""
    found = Notification.objects.filter(alert__in=alert_ids, status=NotificationStatus.PENDING, enqueued_at=None)
    found = found.filter(event=event) if event else found.exclude(event=RESOLVED)
    return list(found.order_by("pk").values_list("pk", flat=True))
