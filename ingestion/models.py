from __future__ import annotations

from django.conf import settings
from django.db import models

from common.models import BaseModel
from teams.models import Team


class DatasetKind(models.TextChoices):
    TIMESERIES = "timeseries", "Time series"
    TABLE = "table", "Table"


class DuplicatePolicy(models.TextChoices):
    """What happens when a point arrives for a (series, ts) that already holds a value."""

    KEEP_FIRST = "keep_first", "Keep the stored value"
    OVERWRITE = "overwrite", "Overwrite with the new value"


class Dataset(BaseModel):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=DatasetKind.choices, default=DatasetKind.TIMESERIES)
    duplicate_policy = models.CharField(
        max_length=16, choices=DuplicatePolicy.choices, default=DuplicatePolicy.KEEP_FIRST
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="dataset_unique_team_name")]

    def __str__(self) -> str:
        return self.name


class Series(BaseModel):
    """One metric with one set of labels. Counters are kept by the bulk loader, so summaries never scan points."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="series")
    metric = models.CharField(max_length=200)
    labels = models.JSONField(default=dict, blank=True)
    point_count = models.BigIntegerField(default=0, editable=False)
    first_ts = models.DateTimeField(null=True, blank=True, editable=False)
    last_ts = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["metric", "id"]
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(fields=["dataset", "metric", "labels"], name="series_unique_dataset_metric_labels")
        ]
        indexes = [models.Index(fields=["dataset", "metric"], name="series_dataset_metric_idx")]

    def __str__(self) -> str:
        if not self.labels:
            return self.metric
        labels = ",".join(f"{key}={value}" for key, value in sorted(self.labels.items()))
        return f"{self.metric}{{{labels}}}"


class Point(models.Model):
    """A value of a series at a time. The primary key (series, ts) makes re-sending a point a no-op.

    No database foreign key: a per-row RI check would double the cost of bulk loads. Points are only
    written by the bulk loader, which resolves their series in the same transaction and holds a
    KEY SHARE lock on them (what the foreign key would take); deleting a series deletes its points.
    """

    pk = models.CompositePrimaryKey("series_id", "ts")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="points", db_constraint=False)
    ts = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        ordering = ["series_id", "ts"]

    def __str__(self) -> str:
        return f"{self.series_id}@{self.ts.isoformat()}={self.value}"


class Record(BaseModel):
    """A row of a table dataset, scored on its own features."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="records")
    external_id = models.CharField(max_length=200, null=True, blank=True)
    ts = models.DateTimeField(null=True, blank=True)
    features = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "external_id"], name="record_unique_dataset_external_id")
        ]
        indexes = [models.Index(fields=["dataset", "ts"], name="record_dataset_ts_idx")]

    def __str__(self) -> str:
        return self.external_id or f"record {self.pk}"


class IngestSource(models.TextChoices):
    API_JSON = "api_json", "API (JSON)"
    API_CSV = "api_csv", "API (CSV)"
    CLI = "cli", "Command line"
    SAMPLE = "sample", "Sample data"


class IngestMode(models.TextChoices):
    STRICT = "strict", "Strict: all rows or none"
    PARTIAL = "partial", "Partial: store valid rows, report the rest"


class IngestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    PARTIAL = "partial", "Completed with rejected rows"
    REJECTED = "rejected", "Rejected (nothing stored)"
    FAILED = "failed", "Failed"


class IngestBatch(BaseModel):
    """Every upload, successful or not: nothing a user sends disappears without a trace."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="batches")
    target = models.CharField(max_length=16, default="points")  # points | records
    source = models.CharField(max_length=16, choices=IngestSource.choices)
    mode = models.CharField(max_length=16, choices=IngestMode.choices, default=IngestMode.STRICT)
    status = models.CharField(max_length=16, choices=IngestStatus.choices, default=IngestStatus.PROCESSING)
    filename = models.CharField(max_length=500, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    received = models.BigIntegerField(default=0)
    inserted = models.BigIntegerField(default=0)
    updated = models.BigIntegerField(default=0)
    duplicate = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="The first rejected rows: row, field, message.")
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    labels = models.JSONField(default=dict, blank=True, help_text="Labels the upload added to every point.")
    # An upload queued for a worker waits here; cleared once processed.
    payload = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "ingest batches"
        indexes = [models.Index(fields=["dataset", "-created_at"], name="batch_dataset_created_idx")]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.status})"
