"""Read endpoints: series (list, detail, points) and the dataset summary the dataset views answer with."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from common.exceptions import ApplicationError
from ingestion import selectors
from ingestion.api.read_serializers import DatasetSummarySerializer, SeriesPointsSerializer, SeriesSerializer
from ingestion.models import Dataset, Series
from teams.permissions import TeamScopedMixin

TIMESTAMP_HELP = "ISO 8601 (2024-05-01T12:00:00+02:00; without an offset it is UTC) or epoch seconds."

SERIES_FILTERS = [
    OpenApiParameter("dataset", OpenApiTypes.INT, description="Only series of this dataset."),
    OpenApiParameter("metric", OpenApiTypes.STR, description="Only series of this metric (exact name)."),
    OpenApiParameter(
        "label",
        OpenApiTypes.STR,
        many=True,
        explode=True,
        description="key:value (or key=value), repeatable (label=host:a&label=region:eu): series whose labels "
        "contain all of them.",
    ),
]

POINTS_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.STR, description=f"Start, inclusive. {TIMESTAMP_HELP}"),
    OpenApiParameter("to", OpenApiTypes.STR, description=f"End, exclusive. {TIMESTAMP_HELP}"),
    OpenApiParameter(
        "resample",
        OpenApiTypes.STR,
        description="Bucket width as a pandas offset (30s, 5min, 1h, 1D). Buckets are aligned to "
        "1970-01-01T00:00Z and labelled by their start. Without it, raw points are returned.",
    ),
    OpenApiParameter(
        "agg", OpenApiTypes.STR, enum=list(selectors.AGGREGATES), default="mean", description="Aggregate per bucket."
    ),
    OpenApiParameter(
        "limit",
        OpenApiTypes.INT,
        default=selectors.DEFAULT_POINTS_LIMIT,
        description=f"Most rows returned (1 to {selectors.MAX_POINTS_LIMIT}). When more match, the response "
        "says truncated and gives next_from, the `from` of the next request. Resampled pages over gaps in the "
        "data may hold fewer rows than the limit.",
    ),
]


@extend_schema_view(list=extend_schema(parameters=SERIES_FILTERS))
class SeriesViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Series of your teams' datasets: metric, labels and counters kept by the loader."""

    queryset = Series.objects.select_related("dataset")
    serializer_class = SeriesSerializer
    team_field = "dataset__team"
    filter_backends: list = []

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        params = self.request.query_params
        return selectors.series_filter(
            queryset,
            dataset_id=_optional_int(params.get("dataset"), name="dataset"),
            metric=params.get("metric") or None,
            labels=selectors.parse_label_filters(params.getlist("label")),
        )

    @extend_schema(parameters=POINTS_PARAMETERS, responses=SeriesPointsSerializer)
    @action(detail=True, methods=["get"], pagination_class=None)
    def points(self, request, pk=None):
        """Points of the series, oldest first: raw, or resampled into buckets in the database."""
        params = request.query_params
        result = selectors.series_points(
            series=self.get_object(),
            start=params.get("from"),
            end=params.get("to"),
            resample=params.get("resample"),
            agg=params.get("agg") or "mean",
            limit=params.get("limit"),
        )
        return Response(series_points_data(result))


def series_points_data(result: selectors.SeriesPoints) -> dict:
    return {
        "series": result.series_id,
        "start": result.start,
        "end": result.end,
        "resample": result.resample,
        "resample_seconds": result.resample_seconds,
        "agg": result.agg,
        "limit": result.limit,
        "count": len(result.points),
        "truncated": result.truncated,
        "next_from": result.next_from,
        "points": [{"ts": ts, "value": value} for ts, value in result.points],
    }


def dataset_summary_response(dataset: Dataset) -> Response:
    """The body of GET /datasets/{id}/summary; document it with `extend_schema(responses=DatasetSummarySerializer)`."""
    return Response(DatasetSummarySerializer(selectors.dataset_summary(dataset=dataset)).data)


def _optional_int(value: str | None, *, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise ApplicationError(f"{name}: {value!r} is not an id.") from exc
