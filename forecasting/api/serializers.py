from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from forecasting.models import Forecast, ForecastConfig, ForecastCrossing, ForecastModelVersion, ForecastRun
from ingestion.models import Dataset
from teams.selectors import team_ids_for_user


class ForecastConfigSerializer(serializers.ModelSerializer):
    levels = serializers.ListField(child=serializers.IntegerField(), required=False)

    class Meta:
        model = ForecastConfig
        fields = [
            "id", "dataset", "name", "metric", "label_filter", "method", "params", "horizon", "levels",
            "training_points", "schedule_interval", "next_run_at", "threshold_above", "threshold_below",
            "threshold_level", "enabled", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["next_run_at", "created_at", "updated_at"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            writable = team_ids_for_user(user=request.user, writable=True)
            fields["dataset"].queryset = Dataset.objects.filter(team__in=writable)
        if self.instance is not None:
            fields["dataset"].read_only = True
        return fields


class BackfillSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="First origin: forecast as of this time.")
    end = serializers.DateTimeField(help_text="No origin at or after this time.")
    every = serializers.DurationField(required=False, help_text="Between origins; default: the config's schedule.")

    def validate(self, attrs):
        if attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"start": "must be before end"})
        return attrs


class ForecastRunSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = ForecastRun
        fields = [
            "id", "config", "trigger", "status", "model_version", "origins", "series_total", "series_done",
            "chunks_total", "chunks_done", "progress", "forecasts_made", "started_at", "finished_at", "error",
            "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ForecastModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ForecastModelVersion
        fields = ["id", "config", "version", "method", "params", "created_at"]
        read_only_fields = fields


class AccuracySerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    version = serializers.IntegerField()
    method = serializers.CharField()
    forecasts = serializers.IntegerField(help_text="Forecasts made by this version.")
    forecasts_realised = serializers.IntegerField(help_text="Of which at least one step has its actual.")
    points_realised = serializers.IntegerField()
    smape = serializers.FloatField(allow_null=True, help_text="Realised sMAPE, %.")
    mase = serializers.FloatField(allow_null=True, help_text="Realised MASE (against in-sample seasonal naive).")
    coverage = serializers.DictField(child=serializers.FloatField(), help_text="Level -> share of actuals inside.")


class ForecastSerializer(serializers.ModelSerializer):
    metric = serializers.CharField(source="series.metric", read_only=True)
    labels = serializers.JSONField(source="series.labels", read_only=True)

    class Meta:
        model = Forecast
        fields = [
            "id", "config", "series", "metric", "labels", "model_version", "run", "made_at", "trained_until",
            "horizon", "levels", "training_size", "detail", "mase_scale", "points_realised", "smape", "mase",
            "coverage", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ForecastStepSerializer(serializers.Serializer):
    ts = serializers.DateTimeField()
    mean = serializers.FloatField()
    lower = serializers.DictField(child=serializers.FloatField(), help_text="Level -> lower bound.")
    upper = serializers.DictField(child=serializers.FloatField(), help_text="Level -> upper bound.")
    actual = serializers.FloatField(allow_null=True)


class ForecastDetailSerializer(ForecastSerializer):
    points = serializers.SerializerMethodField()

    class Meta(ForecastSerializer.Meta):
        fields = [*ForecastSerializer.Meta.fields, "points"]
        read_only_fields = fields

    @extend_schema_field(ForecastStepSerializer(many=True))
    def get_points(self, forecast) -> list[dict]:
        from forecasting.selectors import forecast_points

        levels = [str(level) for level in forecast.levels]
        return ForecastStepSerializer(
            [
                {
                    "ts": p.ts,
                    "mean": p.mean,
                    "lower": dict(zip(levels, p.lower, strict=True)),
                    "upper": dict(zip(levels, p.upper, strict=True)),
                    "actual": p.actual,
                }
                for p in forecast_points(forecast=forecast)
            ],
            many=True,
        ).data


class ForecastCrossingSerializer(serializers.ModelSerializer):
    expected_at = serializers.DateTimeField(read_only=True, help_text="mean_crosses_at, else bound_crosses_at.")

    class Meta:
        model = ForecastCrossing
        fields = [
            "id", "forecast", "config", "series", "direction", "threshold", "level", "bound_crosses_at",
            "mean_crosses_at", "expected_at", "extreme", "created_at",
        ]  # fmt: skip
        read_only_fields = fields
