from rest_framework import serializers

from detectors.models import Anomaly, DetectionRun, Detector, ModelVersion
from forecasting.models import ForecastConfig
from ingestion.models import Dataset
from teams.selectors import team_ids_for_user


class DetectorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Detector
        fields = [
            "id", "dataset", "name", "metric", "label_filter", "joint_metrics", "algorithm", "params", "sensitivity",
            "training_points", "close_after", "adapt_after", "mask_after", "schedule_interval", "next_run_at",
            "realtime", "forecast_config", "forecast_level", "retrain_after_labels", "feedback_beta",
            "enabled", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["next_run_at", "created_at", "updated_at"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            writable = team_ids_for_user(user=request.user, writable=True)
            fields["dataset"].queryset = Dataset.objects.filter(team__in=writable)
            fields["forecast_config"].queryset = ForecastConfig.objects.filter(dataset__team__in=writable)
        if self.instance is not None:
            fields["dataset"].read_only = True
        return fields


class WindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False, allow_null=True, help_text="Window start (inclusive).")
    end = serializers.DateTimeField(required=False, allow_null=True, help_text="Window end (exclusive).")

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"start": "must be before end"})
        return attrs


class DetectionRunSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = DetectionRun
        fields = [
            "id", "detector", "trigger", "status", "window_start", "window_end", "series_total", "series_done",
            "chunks_total", "chunks_done", "progress", "points_scored", "anomalies_found", "started_at",
            "finished_at", "error", "result", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class AnomalySerializer(serializers.ModelSerializer):
    metric = serializers.CharField(source="series.metric", read_only=True, default=None)
    labels = serializers.JSONField(source="series.labels", read_only=True, default=None)

    class Meta:
        model = Anomaly
        fields = [
            "id", "kind", "detector", "forecast_config", "forecast", "direction", "series", "metric", "labels",
            "record", "model_version", "start_ts", "end_ts",
            "peak_ts", "status", "closed_ts", "close_reason", "last_seen", "points", "value", "expected", "lower",
            "upper", "score", "severity", "explanation", "review_status", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id", "detector", "series", "version", "algorithm", "params", "threshold", "sensitivity",
            "training_start", "training_end", "training_size", "status", "reason", "metrics", "triage", "code_version",
            "activated_at", "created_at",
        ]  # fmt: skip
        read_only_fields = fields
