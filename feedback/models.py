from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from common.models import BaseModel
from detectors.models import Anomaly, Detector, ModelVersion
from ingestion.models import Series
from teams.models import Team


class Verdict(models.TextChoices):
    CONFIRMED = "confirmed", "Confirmed"
    FALSE_POSITIVE = "false_positive", "False positive"
    EXPECTED = "expected", "Expected change"
    NEW_NORMAL = "new_normal", "New normal"
    MISSED = "missed", "Missed"


# Verdicts that say "this was a real anomaly" (positives when a model learns from labels).
POSITIVE_VERDICTS = (Verdict.CONFIRMED, Verdict.MISSED)


class LabelSource(models.TextChoices):
    ANALYST = "analyst", "An analyst"
    SIMILARITY = "similarity", "Near-identical to a false positive"


class Label(BaseModel):
    """An analyst's verdict on an incident, or a missed anomaly marked on a series range.

    An incident keeps every verdict it was given (the audit log says who changed what); `current` marks
    the one in force. A label made by the platform itself (`source` similarity: a new incident near-identical
    to one labelled false positive) never teaches a model.
    """

    detector = models.ForeignKey(Detector, on_delete=models.CASCADE, related_name="labels")
    series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    anomaly = models.ForeignKey(Anomaly, null=True, blank=True, on_delete=models.CASCADE, related_name="verdicts")
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    start_ts = models.DateTimeField(help_text="The labelled span: the incident's, or the missed range.")
    end_ts = models.DateTimeField()
    note = models.TextField(blank=True, max_length=2000)
    source = models.CharField(max_length=16, choices=LabelSource.choices, default=LabelSource.ANALYST)
    similar_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Similarity labels: the false positive this incident resembles.",
    )  # fmt: skip
    current = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["anomaly"], condition=Q(current=True), name="label_one_current"),
            models.CheckConstraint(condition=Q(end_ts__gte=models.F("start_ts")), name="label_span_ordered"),
        ]
        indexes = [models.Index(fields=["detector", "series", "verdict"], name="label_detector_series_idx")]

    def __str__(self) -> str:
        return f"{self.get_verdict_display()} on {self.anomaly_id or self.series_id}"


class AuditLog(models.Model):
    """Who changed what: labels, model promotions and rollbacks. Rows are only ever added."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=40)
    target_type = models.CharField(max_length=40)
    target_id = models.BigIntegerField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type} {self.target_id}"


class ReviewClaim(models.Model):
    """An analyst holds an incident of the queue until `expires_at`: nobody else is shown it meanwhile."""

    anomaly = models.OneToOneField(Anomaly, primary_key=True, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.anomaly_id} held by {self.user_id}"


class RetrainingTrigger(models.TextChoices):
    LABELS = "labels", "Enough new labels"
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual"


class RetrainingStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PROMOTED = "promoted", "Promoted: the candidate was better"
    REJECTED = "rejected", "Rejected: the candidate was not better"
    SKIPPED = "skipped", "Skipped: too few labels to judge"
    FAILED = "failed", "Failed"


class Retraining(BaseModel):
    """One training job from labels: the candidates it made, how they compared, and the decision."""

    detector = models.ForeignKey(Detector, on_delete=models.CASCADE, related_name="retrainings")
    trigger = models.CharField(max_length=16, choices=RetrainingTrigger.choices)
    status = models.CharField(max_length=16, choices=RetrainingStatus.choices, default=RetrainingStatus.QUEUED)
    labels = models.ManyToManyField(Label, blank=True, related_name="retrainings")
    candidates = models.ManyToManyField(ModelVersion, blank=True, related_name="retrainings")
    metrics = models.JSONField(default=dict, blank=True, help_text="Candidate and active on the held-out labels.")
    decision = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"retraining {self.pk} of {self.detector} ({self.status})"
