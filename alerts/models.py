"""Channels, rules, alerts (incidents grouped per rule and source) and their notifications.

A `Notification` is one message of an alert to one channel for one event ("opened", "escalated:high",
"resolved"); it is unique per (alert, channel, event), and a sender claims it by a conditional UPDATE
before sending, so it is sent once however often its task runs (see alerts/services/delivery.py).
`DeliveryAttempt` rows log every try.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from alerts.channels.registry import channel_kinds
from common.models import BaseModel
from detectors.models import Anomaly, Detector, Severity
from forecasting.models import ForecastConfig
from ingestion.models import Dataset
from teams.models import Team

CHANNEL_KIND_CHOICES = [(key, label) for key, label in channel_kinds().items()]


class Channel(BaseModel):
    """Where messages go. `config` is shown back; `secrets` (tokens, signing keys, URLs holding tokens)
    never are: the API and admin only say which ones are set."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=CHANNEL_KIND_CHOICES)
    config = models.JSONField(default=dict, blank=True)
    secrets = models.JSONField(default=dict, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True, help_text="Why delivery stopped (a permanent failure).")
    disabled_at = models.DateTimeField(null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="channel_unique_team_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class AlertRule(BaseModel):
    """Which incidents notify which channels, and how often.

    A rule matches incidents of its detectors, of any detector of its datasets, and predicted incidents of
    its forecast configs (or of any forecast config of its datasets). No source at all matches nothing.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=200)
    detectors = models.ManyToManyField(Detector, blank=True, related_name="+")
    datasets = models.ManyToManyField(Dataset, blank=True, related_name="+")
    forecast_configs = models.ManyToManyField(ForecastConfig, blank=True, related_name="+")
    channels = models.ManyToManyField(Channel, related_name="rules")
    min_severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.MEDIUM)
    cooldown = models.DurationField(
        default=timedelta(0), blank=True,
        help_text="After an alert opens, new incidents of the same source join no new alert for this long "
        "(they are kept as a suppressed alert).",
    )  # fmt: skip
    grouping_window = models.DurationField(
        default=timedelta(0), blank=True,
        help_text="Incidents of the same source within this long of an alert's first join it: one message "
        "with a count, sent when the window ends.",
    )  # fmt: skip
    min_deviation = models.FloatField(
        null=True, blank=True,
        help_text="Absolute floor: skip incidents whose value is closer than this to the expected value (or, "
        "predicted, to the threshold). Empty: no floor.",
    )  # fmt: skip
    quiet_start = models.TimeField(null=True, blank=True, help_text="Quiet hours: messages wait until they end.")
    quiet_end = models.TimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", help_text="Time zone of the quiet hours.")
    notify_on_resolve = models.BooleanField(default=True)
    skip_false_positives = models.BooleanField(
        default=False, help_text="Skip incidents near-identical to one labelled false positive."
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="alert_rule_unique_team_name"),
            models.CheckConstraint(
                condition=Q(quiet_start__isnull=True, quiet_end__isnull=True)
                | Q(quiet_start__isnull=False, quiet_end__isnull=False),
                name="alert_rule_quiet_hours_both",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"
    SUPPRESSED = "suppressed", "Suppressed"


class Alert(BaseModel):
    """Incidents of one rule and one source (a detector, or a forecast config) grouped together."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    detector = models.ForeignKey(Detector, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    forecast_config = models.ForeignKey(
        ForecastConfig, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    incidents = models.ManyToManyField(Anomaly, through="AlertIncident", related_name="alerts")
    status = models.CharField(max_length=12, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    suppressed_reason = models.CharField(max_length=200, blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, help_text="The highest notified so far.")
    count = models.PositiveIntegerField(default=0, help_text="Incidents grouped into this alert.")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    group_until = models.DateTimeField(help_text="Incidents of the same source until then join this alert.")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-first_seen"]
        indexes = [models.Index(fields=["rule", "detector", "forecast_config", "-first_seen"], name="alert_source_idx")]

    def __str__(self) -> str:
        return f"alert {self.pk} of {self.rule}"


class AlertIncident(models.Model):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE)
    anomaly = models.ForeignKey(Anomaly, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="+")

    class Meta:
        # An incident joins at most one alert per rule: a redelivered task adds nothing twice.
        constraints = [models.UniqueConstraint(fields=["rule", "anomaly"], name="alert_incident_once_per_rule")]

    def __str__(self) -> str:
        return f"incident {self.anomaly_id} in alert {self.alert_id}"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Notification(BaseModel):
    """One message of an alert to one channel for one event; sent at most once (see the module docstring)."""

    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=24, help_text="opened, escalated:<severity>, resolved, or test.")
    status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    not_before = models.DateTimeField(help_text="Not sent earlier: the grouping window's end, or quiet hours'.")
    claimed_until = models.DateTimeField(null=True, blank=True, help_text="A sender's lease while sending.")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "channel", "event"], condition=Q(alert__isnull=False), name="notification_once"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "not_before"], name="notification_due_idx",
                         condition=Q(status__in=["pending", "sending"])),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.event} of alert {self.alert_id} to {self.channel}"


class IncidentEvent(models.Model):
    """Incidents opened, escalated or resolved, as detection signalled them: kept until alerts handled them,
    so the sweep re-enqueues an event whose task was lost with a killed worker."""

    event = models.CharField(max_length=12)
    anomaly_ids = ArrayField(models.BigIntegerField())
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="incident_event_todo_idx",
                                condition=Q(processed_at__isnull=True))]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.event} {len(self.anomaly_ids)} incidents"


class AttemptStatus(models.TextChoices):
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    RETRY = "retry", "Failed, will retry"
    FAILED = "failed", "Failed for good"
    ABANDONED = "abandoned", "Abandoned (its worker died)"


class DeliveryAttempt(models.Model):
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="delivery_attempts")
    number = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10, choices=AttemptStatus.choices, default=AttemptStatus.SENDING)
    started_at = models.DateTimeField()
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["notification", "number"]
        constraints = [
            models.UniqueConstraint(fields=["notification", "number"], name="delivery_attempt_unique_number")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of notification {self.notification_id}: {self.status}"
