from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from common.models import BaseModel
from forecasting.methods.registry import method_keys
from ingestion.models import Dataset, Series

METHOD_CHOICES = [(key, key) for key in method_keys()]


def default_levels() -> list[int]:
    return [80, 95]


class ForecastConfig(BaseModel):
    """Which series to forecast (dataset + metric/label selector), with which method, how far, how often."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="forecast_configs")
    name = models.CharField(max_length=200)
    metric = models.CharField(max_length=200, blank=True, help_text="Empty means every metric.")
    label_filter = models.JSONField(default=dict, blank=True, help_text="Series whose labels contain these.")
    method = models.CharField(max_length=40, choices=METHOD_CHOICES, default="auto")
    params = models.JSONField(default=dict, blank=True)
    horizon = models.PositiveIntegerField(default=48, help_text="Steps ahead, in the series' own sampling step.")
    levels = ArrayField(models.PositiveSmallIntegerField(), default=default_levels, help_text="Interval levels, %.")
    training_points = models.PositiveIntegerField(
        default=2000, help_text="A forecast is fitted on this many of a series' latest points."
    )
    schedule_interval = models.DurationField(null=True, blank=True, help_text="Empty: runs only on demand.")
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    threshold_above = models.FloatField(
        null=True, blank=True, help_text="Predict a crossing when a forecast's upper bound rises above this."
    )
    threshold_below = models.FloatField(
        null=True, blank=True, help_text="Predict a crossing when a forecast's lower bound falls below this."
    )
    threshold_level = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Whose bounds are compared (one of levels); empty: the narrowest."
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="forecast_config_unique_dataset_name"),
            models.CheckConstraint(condition=Q(horizon__gte=1) & Q(horizon__lte=10000), name="forecast_horizon_range"),
        ]

    def __str__(self) -> str:
        return self.name


class ForecastModelVersion(BaseModel):
    """One method and params of a config. Changing either makes the next run use a new version, so the
    accuracy of each version is tracked on its own forecasts."""

    config = models.ForeignKey(ForecastConfig, on_delete=models.CASCADE, related_name="model_versions")
    version = models.PositiveIntegerField()
    method = models.CharField(max_length=40)
    params = models.JSONField(default=dict)

    class Meta:
        ordering = ["config", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["config", "version"], name="forecast_model_version_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.config} v{self.version} ({self.method})"


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual"
    BACKFILL = "backfill", "Backfill"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ForecastRun(BaseModel):
    """Every forecasting job: the latest forecast of each series, or past origins (a backfill)."""

    config = models.ForeignKey(ForecastConfig, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    model_version = models.ForeignKey(ForecastModelVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    origins = ArrayField(
        models.DateTimeField(), default=list, blank=True, help_text="Backfills: forecast as of these times."
    )
    series_total = models.PositiveIntegerField(default=0)
    series_done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    done_chunks = ArrayField(models.PositiveIntegerField(), default=list, blank=True, editable=False)
    forecasts_made = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["config", "-created_at"], name="fc_run_config_created_idx")]

    def __str__(self) -> str:
        return f"forecast run {self.pk} of {self.config} ({self.status})"

    @property
    def progress(self) -> float:
        return self.chunks_done / self.chunks_total if self.chunks_total else 0.0


class Forecast(BaseModel):
    """One forecast of one series: made from the points up to ``trained_until``, ``horizon`` steps ahead.

    Accuracy fields fill in as actuals arrive (``forecasting.services.tracking``): sMAPE (%), MASE (scaled
    by ``mase_scale``, the in-sample mean absolute seasonal difference) and the share of actuals inside
    each level's interval (``coverage``, in the order of ``levels``), over the ``points_realised`` points.
    """

    config = models.ForeignKey(ForecastConfig, on_delete=models.CASCADE, related_name="forecasts")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="forecasts")
    model_version = models.ForeignKey(ForecastModelVersion, on_delete=models.CASCADE, related_name="forecasts")
    run = models.ForeignKey(ForecastRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    made_at = models.DateTimeField(help_text="When it was made; a backfill's origin.")
    trained_until = models.DateTimeField(help_text="Timestamp of the last point it was fitted on.")
    horizon = models.PositiveIntegerField()
    levels = ArrayField(models.PositiveSmallIntegerField())
    training_size = models.PositiveIntegerField()
    detail = models.JSONField(default=dict, blank=True, help_text="What the method chose (auto: its members).")
    mase_scale = models.FloatField(help_text="In-sample mean absolute seasonal difference (MASE's denominator).")
    points_realised = models.PositiveIntegerField(default=0)
    smape = models.FloatField(null=True, blank=True)
    mase = models.FloatField(null=True, blank=True)
    coverage = ArrayField(models.FloatField(), default=list, blank=True)

    class Meta:
        ordering = ["-made_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["config", "series", "trained_until", "model_version"], name="forecast_unique_origin"
            ),
        ]
        indexes = [
            models.Index(fields=["series", "-made_at"], name="fc_series_made_idx"),
            models.Index(fields=["config", "-made_at"], name="fc_config_made_idx"),
        ]

    def __str__(self) -> str:
        return f"forecast of {self.series} from {self.trained_until:%Y-%m-%d %H:%M}"


class ForecastPoint(models.Model):
    """One step of a forecast: its mean and, per level (the forecast's ``levels`` order), lower and upper."""

    pk = models.CompositePrimaryKey("forecast_id", "ts")
    forecast = models.ForeignKey(Forecast, on_delete=models.CASCADE, related_name="points")
    ts = models.DateTimeField()
    mean = models.FloatField()
    lower = ArrayField(models.FloatField())
    upper = ArrayField(models.FloatField())
    actual = models.FloatField(null=True, blank=True, help_text="The series' value at ts, once it arrived.")

    class Meta:
        ordering = ["forecast_id", "ts"]

    def __str__(self) -> str:
        return f"{self.forecast_id}@{self.ts.isoformat()}"


class Direction(models.TextChoices):
    ABOVE = "above", "Above"
    BELOW = "below", "Below"


class ForecastCrossing(BaseModel):
    """A forecast whose bound crosses its config's threshold within the horizon: a predicted incident.

    ``bound_crosses_at`` is the first step whose bound (at ``level``) is past the threshold, the
    earliest the crossing is plausible; ``mean_crosses_at`` the first step whose mean is past it, the
    expected crossing time (null when only the bound crosses). Sent to subscribers by
    ``forecasting.signals.crossings_predicted`` after commit.
    """

    forecast = models.ForeignKey(Forecast, on_delete=models.CASCADE, related_name="crossings")
    config = models.ForeignKey(ForecastConfig, on_delete=models.CASCADE, related_name="crossings")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="forecast_crossings")
    direction = models.CharField(max_length=8, choices=Direction.choices)
    threshold = models.FloatField()
    level = models.PositiveSmallIntegerField()
    bound_crosses_at = models.DateTimeField()
    mean_crosses_at = models.DateTimeField(null=True, blank=True)
    extreme = models.FloatField(help_text="The furthest bound past the threshold within the horizon.")

    class Meta:
        ordering = ["bound_crosses_at"]
        constraints = [
            models.UniqueConstraint(fields=["forecast", "direction"], name="forecast_crossing_unique_direction"),
        ]

    def __str__(self) -> str:
        return f"{self.series} predicted {self.direction} {self.threshold:g} at {self.bound_crosses_at:%Y-%m-%d %H:%M}"

    @property
    def expected_at(self):
        return self.mean_crosses_at or self.bound_crosses_at
