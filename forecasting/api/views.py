from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from common.exceptions import ApplicationError
from common.filters import IdFilterSet
from common.pagination import NewestFirstCursorPagination
from forecasting import selectors
from forecasting.api.serializers import (
    AccuracySerializer,
    BackfillSerializer,
    ForecastConfigSerializer,
    ForecastCrossingSerializer,
    ForecastDetailSerializer,
    ForecastModelVersionSerializer,
    ForecastRunSerializer,
    ForecastSerializer,
)
from forecasting.models import (
    Forecast,
    ForecastConfig,
    ForecastCrossing,
    ForecastModelVersion,
    ForecastRun,
    RunTrigger,
)
from forecasting.services import configs, runs
from ingestion.models import Series
from teams.permissions import TeamScopedMixin


class ForecastConfigViewSet(TeamScopedMixin, viewsets.ModelViewSet):
    """Forecast configs of your teams' datasets. Params are checked against the method's own schema."""

    queryset = ForecastConfig.objects.select_related("dataset")
    serializer_class = ForecastConfigSerializer
    team_field = "dataset__team"
    filterset_fields = ["dataset", "method", "enabled"]

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = configs.forecast_config_create(
            dataset=data.pop("dataset"), name=data.pop("name"), user=self.request.user, **data
        )

    def perform_update(self, serializer):
        serializer.instance = configs.forecast_config_update(config=serializer.instance, **serializer.validated_data)

    @extend_schema(request=None, responses={202: ForecastRunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Forecast every series from its newest point now (in the workers)."""
        config = self.get_object()
        run = runs.run_create(config=config, trigger=RunTrigger.MANUAL, user=request.user)
        runs.run_enqueue(run=run)
        return Response(ForecastRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=BackfillSerializer, responses={202: ForecastRunSerializer})
    @action(detail=True, methods=["post"])
    def backfill(self, request, pk=None):
        """Forecast as of past origins (start, start + every, ... before end), each fitted only on the points
        before its origin; the forecasts are tracked against the actuals already stored."""
        config = self.get_object()
        body = BackfillSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        every = body.validated_data.get("every") or config.schedule_interval
        if every is None:
            raise ApplicationError("every is required when the config has no schedule.", extra={"field": "every"})
        origins = runs.backfill_origins(start=body.validated_data["start"], end=body.validated_data["end"], every=every)
        run = runs.run_create(config=config, trigger=RunTrigger.BACKFILL, origins=origins, user=request.user)
        runs.run_enqueue(run=run)
        return Response(ForecastRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=AccuracySerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def accuracy(self, request, pk=None):
        """Realised sMAPE, MASE and interval coverage per model version, over every step whose actual arrived."""
        return Response(AccuracySerializer(selectors.config_accuracy(config=self.get_object()), many=True).data)


class ForecastRunViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Every forecasting job with its progress, counts and errors."""

    queryset = ForecastRun.objects.all()
    serializer_class = ForecastRunSerializer
    team_field = "config__dataset__team"
    pagination_class = NewestFirstCursorPagination
    filterset_fields = ["config", "status", "trigger"]


class ForecastModelVersionViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """The methods and params each config has used; accuracy per version is on the config's `accuracy`."""

    queryset = ForecastModelVersion.objects.all()
    serializer_class = ForecastModelVersionSerializer
    team_field = "config__dataset__team"
    filterset_fields = ["config", "method"]


class ForecastFilter(IdFilterSet):
    class Meta:
        model = Forecast
        fields = ["config", "series", "model_version", "run"]


class ForecastViewSet(TeamScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Stored forecasts, newest first; one forecast's detail holds its steps with their bands."""

    queryset = Forecast.objects.select_related("series")
    serializer_class = ForecastSerializer
    team_field = "config__dataset__team"
    filterset_class = ForecastFilter

    class Pagination(NewestFirstCursorPagination):
        ordering = "-made_at"

    pagination_class = Pagination

    def get_serializer_class(self):
        return ForecastDetailSerializer if self.action == "retrieve" else ForecastSerializer


class ForecastCrossingFilter(IdFilterSet):
    class Meta:
        model = ForecastCrossing
        fields = ["config", "series", "forecast", "direction"]


class ForecastCrossingViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Predicted crossings: forecasts whose bound passes their config's threshold within the horizon."""

    queryset = ForecastCrossing.objects.all()
    serializer_class = ForecastCrossingSerializer
    team_field = "config__dataset__team"
    filterset_class = ForecastCrossingFilter

    class Pagination(NewestFirstCursorPagination):
        ordering = "-created_at"

    pagination_class = Pagination


class SeriesForecastView(TeamScopedMixin, APIView):
    """The series' latest forecast with its steps (of one config with `?config=`)."""

    queryset = Series.objects.all()
    team_field = "dataset__team"

    @extend_schema(responses=ForecastDetailSerializer)
    def get(self, request, pk: int):
        series = get_object_or_404(self.get_queryset(), pk=pk)
        config_id = request.query_params.get("config")
        if config_id is not None and not config_id.isdigit():
            raise ApplicationError("config must be an id.", extra={"field": "config"})
        forecast = selectors.latest_forecast(series_id=series.pk, config_id=int(config_id) if config_id else None)
        if forecast is None:
            raise NotFound("This series has no forecast yet.")
        return Response(ForecastDetailSerializer(forecast).data)
