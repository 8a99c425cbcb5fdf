from rest_framework import serializers

from alerts.channels.registry import get_channel
from alerts.models import Alert, AlertRule, Channel, DeliveryAttempt, Notification
from detectors.models import Detector
from forecasting.models import ForecastConfig
from ingestion.models import Dataset
from teams.selectors import team_ids_for_user


def _writable_teams(serializer):
    request = serializer.context.get("request")
    if request is None or not request.user.is_authenticated:
        return None
    return team_ids_for_user(user=request.user, writable=True)


class ChannelSerializer(serializers.ModelSerializer):
    secrets = serializers.JSONField(
        write_only=True, required=False,
        help_text="Write-only (never shown back). On update, keys not sent keep their value.",
    )  # fmt: skip
    secrets_set = serializers.SerializerMethodField(help_text="Which secrets are set (their values are never shown).")

    class Meta:
        model = Channel
        fields = [
            "id", "team", "name", "kind", "config", "secrets", "secrets_set", "enabled", "disabled_reason",
            "disabled_at", "last_sent_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["disabled_reason", "disabled_at", "last_sent_at", "created_at", "updated_at"]

    def get_fields(self):
        fields = super().get_fields()
        writable = _writable_teams(self)
        if writable is not None:
            fields["team"].queryset = fields["team"].queryset.filter(pk__in=writable)
        if self.instance is not None:
            fields["team"].read_only = fields["kind"].read_only = True
        return fields

    def get_secrets_set(self, channel: Channel) -> list[str]:
        return [name for name in get_channel(channel.kind).secret_fields() if channel.secrets.get(name)]


class AlertRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertRule
        fields = [
            "id", "team", "name", "detectors", "datasets", "forecast_configs", "channels", "min_severity",
            "cooldown", "grouping_window", "min_deviation", "quiet_start", "quiet_end", "timezone",
            "notify_on_resolve", "skip_false_positives", "enabled", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {"channels": {"allow_empty": False}}

    def get_fields(self):
        fields = super().get_fields()
        writable = _writable_teams(self)
        if writable is not None:
            # Another team's id reads as "does not exist", like an id that does not.
            fields["team"].queryset = fields["team"].queryset.filter(pk__in=writable)
            fields["detectors"].child_relation.queryset = Detector.objects.filter(dataset__team__in=writable)
            fields["datasets"].child_relation.queryset = Dataset.objects.filter(team__in=writable)
            fields["forecast_configs"].child_relation.queryset = ForecastConfig.objects.filter(
                dataset__team__in=writable
            )
            fields["channels"].child_relation.queryset = Channel.objects.filter(team__in=writable)
        if self.instance is not None:
            fields["team"].read_only = True
        return fields


class AlertSerializer(serializers.ModelSerializer):
    class Meta:
        model = Alert
        fields = [
            "id", "rule", "detector", "forecast_config", "status", "suppressed_reason", "severity", "count",
            "incidents", "first_seen", "last_seen", "group_until", "resolved_at", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "status", "started_at", "latency_ms", "http_status", "error", "worker"]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    delivery_attempts = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id", "alert", "channel", "event", "status", "not_before", "attempts", "sent_at", "error",
            "delivery_attempts", "created_at",
        ]  # fmt: skip
        read_only_fields = fields
