"""Output shapes of the read endpoints: series, their points, dataset summaries."""

from __future__ import annotations

from rest_framework import serializers

from ingestion.models import Series
from ingestion.selectors import AGGREGATES


class SeriesSerializer(serializers.ModelSerializer):
    class Meta:
        model = Series
        fields = ["id", "dataset", "metric", "labels", "point_count", "first_ts", "last_ts"]
        read_only_fields = fields


class PointSerializer(serializers.Serializer):
    ts = serializers.DateTimeField(help_text="Time of the point, or start of the bucket when resampled.")
    value = serializers.FloatField(allow_null=True, help_text="Null for NaN or infinite values.")


class SeriesPointsSerializer(serializers.Serializer):
    """Documents the points response; the view builds it directly, as it may hold 100,000 rows."""

    series = serializers.IntegerField()
    start = serializers.DateTimeField(allow_null=True, help_text="The `from` asked for (inclusive).")
    end = serializers.DateTimeField(allow_null=True, help_text="The `to` asked for (exclusive).")
    resample = serializers.CharField(allow_null=True)
    resample_seconds = serializers.FloatField(allow_null=True)
    agg = serializers.ChoiceField(choices=list(AGGREGATES), allow_null=True)
    limit = serializers.IntegerField()
    count = serializers.IntegerField(help_text="Number of points (or buckets) returned.")
    truncated = serializers.BooleanField(help_text="True when more rows match than `limit`.")
    next_from = serializers.DateTimeField(
        allow_null=True, help_text="When truncated: pass it as `from` to read the next rows."
    )
    points = PointSerializer(many=True)


class DatasetSummarySerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    series_count = serializers.IntegerField()
    metric_count = serializers.IntegerField()
    point_count = serializers.IntegerField(help_text="Sum of the series' point counters.")
    first_ts = serializers.DateTimeField(allow_null=True)
    last_ts = serializers.DateTimeField(allow_null=True)
    frequency = serializers.CharField(
        allow_null=True, help_text="Inferred spacing as a pandas offset alias (5min, 1h, 1D); null when unknown."
    )
    frequency_seconds = serializers.FloatField(allow_null=True)
    record_count = serializers.IntegerField(allow_null=True, help_text="Table datasets only.")
    records_first_ts = serializers.DateTimeField(allow_null=True)
    records_last_ts = serializers.DateTimeField(allow_null=True)
    feature_keys = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="Keys seen in the latest 10,000 records."
    )
    feature_types = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        allow_null=True,
        help_text="JSON types seen per feature key.",
    )
