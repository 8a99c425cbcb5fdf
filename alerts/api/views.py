from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from alerts.api.serializers import AlertRuleSerializer, AlertSerializer, ChannelSerializer, NotificationSerializer
from alerts.models import Alert, AlertRule, Channel, DeliveryAttempt, Notification
from alerts.services import configs
from common.pagination import NewestFirstCursorPagination
from teams.permissions import TeamScopedMixin


class ChannelViewSet(TeamScopedMixin, viewsets.ModelViewSet):
    """Where alerts go: email, webhook, Slack, apprise. Secrets are write-only; a permanent delivery
    failure disables a channel and says why in `disabled_reason` (set `enabled` to turn it on again)."""

    queryset = Channel.objects.all()
    serializer_class = ChannelSerializer
    filterset_fields = ["team", "kind", "enabled"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = configs.channel_create(
            team=data.pop("team"), name=data.pop("name"), kind=data.pop("kind"), user=self.request.user, **data
        )

    def perform_update(self, serializer):
        serializer.instance = configs.channel_update(channel=serializer.instance, **serializer.validated_data)

    @extend_schema(request=None, responses={202: NotificationSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a test message through a worker; follow it at /notifications/{id}."""
        channel = self.get_object()
        self.require_write_role(channel.team_id)
        notification = configs.channel_send_test(channel=channel)
        return Response(NotificationSerializer(notification).data, status=status.HTTP_202_ACCEPTED)


class AlertRuleViewSet(TeamScopedMixin, viewsets.ModelViewSet):
    """Which incidents (detectors, datasets, forecast configs) notify which channels, and how often."""

    queryset = AlertRule.objects.prefetch_related("detectors", "datasets", "forecast_configs", "channels")
    serializer_class = AlertRuleSerializer
    filterset_fields = ["team", "enabled"]

    def perform_create(self, serializer):
        serializer.instance = self._save(AlertRule(created_by=self.request.user), serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = self._save(serializer.instance, serializer.validated_data)

    @staticmethod
    def _save(rule: AlertRule, data: dict) -> AlertRule:
        data = dict(data)
        sources = {field: data.pop(field) for field in configs.RULE_SOURCES if field in data}
        channels = data.pop("channels", None)
        for field, value in data.items():
            setattr(rule, field, value)
        return configs.rule_save(rule=rule, sources=sources, channels=channels)


class AlertViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Incidents grouped per rule and source, with their count; suppressed ones say why."""

    queryset = Alert.objects.prefetch_related("incidents")
    serializer_class = AlertSerializer
    team_field = "rule__team"
    filterset_fields = ["rule", "detector", "forecast_config", "status"]
    pagination_class = NewestFirstCursorPagination


class NotificationViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Every message of an alert to a channel, with each delivery attempt (status, HTTP code, latency)."""

    queryset = Notification.objects.prefetch_related(
        Prefetch("delivery_attempts", queryset=DeliveryAttempt.objects.order_by("number"))
    )
    serializer_class = NotificationSerializer
    team_field = "channel__team"
    filterset_fields = ["alert", "channel", "status", "event"]
    pagination_class = NewestFirstCursorPagination
