from __future__ import annotations

import django_filters
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from common.filters import IdFilter, IdFilterSet, UtcIsoDateTimeFilter
from common.pagination import NewestFirstCursorPagination
from detectors import tasks
from detectors.api.serializers import (
    AnomalySerializer,
    DetectionRunSerializer,
    DetectorSerializer,
    ModelVersionSerializer,
    WindowSerializer,
)
from detectors.models import Anomaly, DetectionRun, Detector, ModelVersion, RunTrigger
from detectors.selectors import anomalies_for_user
from detectors.services import configs, modelling, runs
from teams.permissions import TeamScopedMixin


class DetectorViewSet(TeamScopedMixin, viewsets.ModelViewSet):
    """Detectors of your teams' datasets. Params are checked against the algorithm's own schema."""

    queryset = Detector.objects.select_related("dataset")
    serializer_class = DetectorSerializer
    team_field = "dataset__team"
    filterset_fields = ["dataset", "algorithm", "enabled", "realtime"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = configs.detector_create(
            dataset=data.pop("dataset"), name=data.pop("name"), user=self.request.user, **data
        )

    def perform_update(self, serializer):
        serializer.instance = configs.detector_update(detector=serializer.instance, **serializer.validated_data)

    def _window_run(self, request, trigger: str) -> Response:
        detector = self.get_object()
        window = WindowSerializer(data=request.data)
        window.is_valid(raise_exception=True)
        run = runs.run_create(detector=detector, trigger=trigger, user=request.user, **window.validated_data)
        runs.run_enqueue(run=run)
        return Response(DetectionRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=WindowSerializer, responses={202: DetectionRunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Score now: new points since the last run, or the given window (a backfill) when start is set."""
        has_window = isinstance(request.data, dict) and bool(request.data.get("start"))
        return self._window_run(request, RunTrigger.BACKFILL if has_window else RunTrigger.MANUAL)

    @extend_schema(request=WindowSerializer, responses={202: DetectionRunSerializer})
    @action(detail=True, methods=["post"])
    def backtest(self, request, pk=None):
        """Score a historical window without storing or alerting; the run's result holds the anomalies
        and, where the window has confirmed anomalies, precision / recall / F1 against them."""
        return self._window_run(request, RunTrigger.BACKTEST)

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def train(self, request, pk=None):
        """Fit a new model for every watched series on its latest points (in a worker)."""
        detector = self.get_object()
        tasks.request_training(detector.pk)
        return Response({"detail": "Training queued.", "detector": detector.pk}, status=status.HTTP_202_ACCEPTED)


class DetectionRunViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Every detection job with its progress, counts and errors."""

    queryset = DetectionRun.objects.all()
    serializer_class = DetectionRunSerializer
    team_field = "detector__dataset__team"
    pagination_class = NewestFirstCursorPagination
    filterset_fields = ["detector", "status", "trigger"]


class AnomalyFilter(IdFilterSet):
    start = UtcIsoDateTimeFilter(field_name="start_ts", lookup_expr="gte")
    end = UtcIsoDateTimeFilter(field_name="start_ts", lookup_expr="lt")
    min_score = django_filters.NumberFilter(field_name="score", lookup_expr="gte")
    dataset = IdFilter(method="filter_dataset")

    class Meta:
        model = Anomaly
        fields = [
            "kind", "detector", "forecast_config", "direction", "series", "record", "severity", "review_status",
            "status",
        ]  # fmt: skip

    def filter_dataset(self, queryset, name, value):
        return queryset.filter(Q(detector__dataset=value) | Q(forecast_config__dataset=value))


class AnomalyViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Incidents, newest first, filtered by kind (observed, predicted), detector or forecast config, series,
    severity, review status, status and time."""

    queryset = Anomaly.objects.select_related("series")
    serializer_class = AnomalySerializer
    team_field = "detector__dataset__team"  # predicted incidents: through their forecast config (get_queryset)

    def get_queryset(self):
        return anomalies_for_user(user=self.request.user).select_related("series").defer("state")

    filterset_class = AnomalyFilter

    class Pagination(NewestFirstCursorPagination):
        ordering = "-start_ts"

    pagination_class = Pagination


class ModelVersionViewSet(TeamScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Trained models. Activating an older version is the rollback."""

    queryset = ModelVersion.objects.defer("state")
    serializer_class = ModelVersionSerializer
    team_field = "detector__dataset__team"
    filterset_fields = ["detector", "series", "status"]

    @extend_schema(request=None, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        version = modelling.model_version_activate(version=self.get_object())
        return Response(ModelVersionSerializer(version).data)
