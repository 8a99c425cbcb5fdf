from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from common.models import BaseModel
from detectors.algorithms.registry import algorithm_keys
from ingestion.models import Dataset, Record, Series

ALGORITHM_CHOICES = [(key, key) for key in algorithm_keys()]


class Detector(BaseModel):
    """What to watch (series of a dataset, or its table rows), with which algorithm, how often."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="detectors")
    name = models.CharField(max_length=200)
    # Series selector (time series datasets): an empty metric means every metric.
    metric = models.CharField(max_length=200, blank=True)
    label_filter = models.JSONField(default=dict, blank=True, help_text="Series whose labels contain these.")
    joint_metrics = models.BooleanField(
        default=False,
        help_text="Score the metrics of one entity (series with identical labels) together, as one multivariate "
        "series, at the timestamps every metric has. Needs a multivariate algorithm and an empty metric. Models, "
        "incidents and cursors live on the entity's lead series: the metric whose name sorts first.",
    )
    algorithm = models.CharField(max_length=40, choices=ALGORITHM_CHOICES, default="auto")
    params = models.JSONField(default=dict, blank=True)
    sensitivity = models.FloatField(
        default=0.5,
        help_text="0-1. A point is unusual when data like the series' own history is that extreme at most "
        "10^-(1 + 5 (1 - sensitivity)^2) of the time: 1 in 10 points at 1, about 1 in 180 at 0.5, 1 in a "
        "million at 0. Alarms are rarer: one per incident, and only when a point beats the recent ones.",
    )
    training_points = models.PositiveIntegerField(
        default=2000, help_text="A model is fitted on this many of a series' latest points before what it scores."
    )
    close_after = models.PositiveIntegerField(
        default=10, help_text="An incident closes after about this many points back inside its band."
    )
    adapt_after = models.PositiveIntegerField(
        default=0,
        help_text="An incident still open after this many points closes as re-baselined: its level becomes "
        "the new normal and a new model version is fitted. 0: never.",
    )
    mask_after = models.PositiveIntegerField(
        default=0,
        help_text="Incidents of at least this many points are kept out of what the detector learns (its "
        "baselines and score calibration). 0: none.",
    )
    schedule_interval = models.DurationField(null=True, blank=True, help_text="Empty: runs only on demand.")
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    realtime = models.BooleanField(default=False, help_text="Score newly ingested points within seconds.")
    record_cursor = models.BigIntegerField(null=True, blank=True, editable=False, help_text="Last scored record.")
    enabled = models.BooleanField(default=True)
    forecast_config = models.ForeignKey(
        "forecasting.ForecastConfig",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="detectors",
        help_text="Score points against this config's stored forecasts where one covers them (same dataset).",
    )
    forecast_level = models.PositiveSmallIntegerField(
        default=95, help_text="Which of the forecast's interval levels is the expected band, %."
    )
    retrain_after_labels = models.PositiveIntegerField(
        default=10,
        help_text="Train a candidate model after this many new labels on the detector. 0: only on schedule or by hand.",
    )
    feedback_beta = models.FloatField(
        default=2.0,
        help_text="How labels are weighed when a candidate is calibrated and compared: the F-beta score, beta > 1 "
        "favours finding every incident, beta < 1 favours fewer false alarms.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="detector_unique_dataset_name"),
            models.CheckConstraint(
                condition=Q(sensitivity__gte=0) & Q(sensitivity__lte=1), name="detector_sensitivity_0_1"
            ),
            models.CheckConstraint(
                condition=Q(feedback_beta__gt=0) & Q(feedback_beta__lte=10), name="detector_feedback_beta_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class ModelReason(models.TextChoices):
    INITIAL = "initial", "First model"
    SCHEDULE = "schedule", "Scheduled retraining"
    MANUAL = "manual", "Manual"
    FEEDBACK = "feedback", "Feedback"
    ROLLBACK = "rollback", "Rollback"


class ModelVersion(BaseModel):
    """A fitted model of a detector (per series for time series). Its state is JSON, never a pickle."""

    detector = models.ForeignKey(Detector, on_delete=models.CASCADE, related_name="model_versions")
    series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveIntegerField()
    algorithm = models.CharField(max_length=40)
    params = models.JSONField(default=dict)
    state = models.JSONField(help_text="The fitted state (JSON only; nothing is ever unpickled).")
    threshold = models.FloatField(help_text="Calibrated anomaly score (0-1) that raises an alarm.")
    sensitivity = models.FloatField()
    training_start = models.DateTimeField(null=True, blank=True)
    training_end = models.DateTimeField(null=True, blank=True)
    training_size = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE)
    reason = models.CharField(max_length=16, choices=ModelReason.choices, default=ModelReason.INITIAL)
    metrics = models.JSONField(default=dict, blank=True)
    triage = models.JSONField(
        default=dict,
        blank=True,
        help_text="Learnt from labels: which new incidents are held back as likely false alarms (empty: none).",
    )
    code_version = models.CharField(max_length=40, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["detector", "series", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["detector", "series", "version"], name="model_version_unique_number", nulls_distinct=False
            ),
            models.UniqueConstraint(
                fields=["detector", "series"],
                condition=Q(status="active"),
                name="model_version_one_active",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.detector} v{self.version}" + (f" ({self.series})" if self.series_id else "")


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual"
    REALTIME = "realtime", "Realtime"
    BACKFILL = "backfill", "Backfill"
    BACKTEST = "backtest", "Backtest"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class DetectionRun(BaseModel):
    detector = models.ForeignKey(Detector, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    series_total = models.PositiveIntegerField(default=0)
    series_done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    done_chunks = ArrayField(models.PositiveIntegerField(), default=list, blank=True, editable=False)
    points_scored = models.BigIntegerField(default=0)
    anomalies_found = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="Backtests: anomalies and scores.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["detector", "-created_at"], name="run_detector_created_idx")]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.detector} ({self.status})"

    @property
    def progress(self) -> float:
        return self.chunks_done / self.chunks_total if self.chunks_total else 0.0


class SeriesCursor(models.Model):
    """How far a detector has scored a series, and whether new points wait (realtime coalescing)."""

    detector = models.ForeignKey(Detector, on_delete=models.CASCADE, related_name="cursors")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="+")
    scored_until = models.DateTimeField(null=True, blank=True, help_text="Timestamp of the last scored point.")
    pending = models.BooleanField(default=False, help_text="New points arrived and a realtime run is queued.")
    rescore_from = models.DateTimeField(
        null=True, blank=True, help_text="Late points arrived behind the cursor: the next run scores from here."
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["detector", "series"], name="cursor_unique_detector_series")]

    def __str__(self) -> str:
        return f"{self.detector} / {self.series}: {self.scored_until}"


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class ReviewStatus(models.TextChoices):
    UNREVIEWED = "unreviewed", "Unreviewed"
    CONFIRMED = "confirmed", "Confirmed"
    FALSE_POSITIVE = "false_positive", "False positive"
    EXPECTED = "expected", "Expected change"
    NEW_NORMAL = "new_normal", "New normal"
    SUPPRESSED = "suppressed", "Suppressed: like incidents labelled false positive"


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class CloseReason(models.TextChoices):
    RECOVERED = "recovered", "Recovered: back inside its band"
    REBASELINED = "rebaselined", "Re-baselined: its level became the new normal"
    NO_LONGER_FORECAST = "no_longer_forecast", "No longer forecast: a later forecast does not cross"
    SUPERSEDED = "superseded", "Superseded: a new model version judges the series afresh"


class IncidentKind(models.TextChoices):
    OBSERVED = "observed", "Observed: found in the data by a detector"
    PREDICTED = "predicted", "Predicted: a forecast crosses a threshold"
    MISSED = "missed", "Missed: marked by an analyst where the detector raised nothing"


class Anomaly(BaseModel):
    """An incident: it opens at an alarm and lasts while the data stays away from normal.

    `start_ts` is the alarm, `end_ts` the last abnormal point, `closed_ts` the point at which it closed.
    An open incident is followed by later runs; `state` holds what they need (the normal behaviour frozen at
    the alarm, and how far the incident has been followed).

    A *predicted* incident (``kind``) comes from a forecast config's threshold, not from a detector: its
    ``start_ts`` is the expected crossing time (the forecast's mean past the threshold, else its bound),
    ``peak_ts`` the earliest plausible one (the bound), and a later forecast of the same config and
    series moves it or, when it no longer crosses, closes it. Detection runs never see it.
    """

    kind = models.CharField(max_length=10, choices=IncidentKind.choices, default=IncidentKind.OBSERVED)
    detector = models.ForeignKey(Detector, null=True, blank=True, on_delete=models.CASCADE, related_name="anomalies")
    forecast_config = models.ForeignKey(
        "forecasting.ForecastConfig", null=True, blank=True, on_delete=models.CASCADE, related_name="predicted"
    )
    forecast = models.ForeignKey(
        "forecasting.Forecast", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Predicted: the latest forecast that crosses.",
    )  # fmt: skip
    direction = models.CharField(max_length=8, blank=True, help_text="Predicted: above or below the threshold.")
    series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.CASCADE, related_name="anomalies")
    record = models.ForeignKey(Record, null=True, blank=True, on_delete=models.CASCADE, related_name="anomalies")
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL)
    run = models.ForeignKey(DetectionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    start_ts = models.DateTimeField()
    end_ts = models.DateTimeField()
    peak_ts = models.DateTimeField()
    value = models.JSONField(null=True, help_text="The value at the peak (a number, or the record's features).")
    expected = models.FloatField(null=True, blank=True)
    lower = models.FloatField(null=True, blank=True)
    upper = models.FloatField(null=True, blank=True)
    score = models.FloatField(help_text="Calibrated anomaly score at the peak, 0-1.")
    severity = models.CharField(max_length=16, choices=Severity.choices)
    explanation = models.JSONField(default=dict, blank=True)
    review_status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.UNREVIEWED)
    status = models.CharField(max_length=8, choices=IncidentStatus.choices, default=IncidentStatus.CLOSED)
    closed_ts = models.DateTimeField(null=True, blank=True, help_text="The point at which it closed.")
    close_reason = models.CharField(max_length=20, choices=CloseReason.choices, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True, help_text="The latest point judged while it was open.")
    points = models.PositiveIntegerField(default=1, help_text="Points from the alarm to the last abnormal one.")
    state = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["-start_ts"]
        verbose_name_plural = "anomalies"
        constraints = [
            models.UniqueConstraint(
                fields=["detector", "series", "record", "start_ts"],
                condition=Q(kind="observed"),
                name="anomaly_unique_start",
                nulls_distinct=False,
            ),
            models.UniqueConstraint(
                fields=["detector", "series"],
                condition=Q(status="open", kind="observed"),
                name="anomaly_one_open_per_series",
            ),
            models.UniqueConstraint(
                fields=["forecast_config", "series", "direction"],
                condition=Q(status="open", kind="predicted"),
                name="anomaly_one_open_prediction",
            ),
            models.CheckConstraint(
                condition=Q(kind="observed", detector__isnull=False)
                | Q(kind="predicted", forecast_config__isnull=False, series__isnull=False)
                | Q(kind="missed", detector__isnull=False, series__isnull=False),
                name="anomaly_kind_has_source",
            ),
        ]
        indexes = [
            models.Index(fields=["detector", "-start_ts"], name="anomaly_detector_start_idx"),
            models.Index(fields=["series", "-start_ts"], name="anomaly_series_start_idx"),
            models.Index(fields=["-start_ts"], name="anomaly_start_idx"),  # the newest-first list of a team's
        ]

    def __str__(self) -> str:
        return f"{self.severity} anomaly at {self.peak_ts:%Y-%m-%d %H:%M}"
