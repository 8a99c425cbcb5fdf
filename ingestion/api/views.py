from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from common.exceptions import ApplicationError
from common.pagination import NewestFirstCursorPagination
from common.parsers import SafeJSONParser
from ingestion import services
from ingestion.api.parsers import AppCSVParser, CSVParser
from ingestion.api.read_serializers import DatasetSummarySerializer
from ingestion.api.read_views import dataset_summary_response
from ingestion.api.serializers import DatasetSerializer, IngestBatchSerializer, UploadQuerySerializer
from ingestion.models import Dataset, IngestBatch, IngestSource, IngestStatus
from ingestion.parsers import KeyLimits, labels_problem, parse_labels_text
from teams.permissions import TeamScopedMixin


class DatasetViewSet(TeamScopedMixin, viewsets.ModelViewSet):
    """Datasets of your teams. Creating, changing and deleting need the analyst or admin role."""

    queryset = Dataset.objects.select_related("team")
    serializer_class = DatasetSerializer
    filterset_fields = ["team", "kind"]

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.dataset_create(
            team=data.pop("team"), name=data.pop("name"), user=self.request.user, **data
        )

    def perform_update(self, serializer):
        name = serializer.validated_data.get("name")
        instance = serializer.instance
        if name and name != instance.name and Dataset.objects.filter(team=instance.team, name=name).exists():
            raise ApplicationError(f"The team already has a dataset named {name!r}.", extra={"field": "name"})
        serializer.save()

    @extend_schema(responses=DatasetSummarySerializer)
    @action(detail=True, methods=["get"])
    def summary(self, request, pk=None):
        """Series and point counts, first and last timestamp, inferred frequency (no scan of the points)."""
        return dataset_summary_response(self.get_object())


class IngestBatchViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Every upload with its outcome: counts, status and the first rejected rows."""

    queryset = IngestBatch.objects.defer("payload")
    serializer_class = IngestBatchSerializer
    team_field = "dataset__team"
    pagination_class = NewestFirstCursorPagination
    filterset_fields = ["dataset", "status", "source", "target"]


UPLOAD_PARAMETERS = [
    OpenApiParameter("mode", str, enum=["strict", "partial"], description="strict (default): all rows or none. "
                     "partial: store the valid rows and report the rejected ones."),
    OpenApiParameter("async", bool, description="Queue the upload for a worker and answer 202 at once."),
    OpenApiParameter("labels", str, description="Labels added to every point: key=value;key=value or JSON."),
]  # fmt: skip


class _UploadView(TeamScopedMixin, APIView):
    """Shared by the points and records uploads: checks, then one service call."""

    target = "points"
    parser_classes = [SafeJSONParser, CSVParser, AppCSVParser, MultiPartParser]
    queryset = Dataset.objects.all()

    def post(self, request, pk: int):
        dataset = get_object_or_404(self.get_queryset(), pk=pk)
        self.require_write_role(dataset.team_id)
        query = UploadQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        options = query.validated_data
        labels = self._labels(options.get("labels"))
        refusal = self._refusal(request)
        if refusal is None:
            _read_body(request)
            try:
                data, content_type, filename, raw = self._body(request)
            except (ParseError, ApplicationError) as exc:
                refusal = (getattr(exc, "status", 400), str(getattr(exc, "message", None) or exc.detail))
        if refusal is not None:
            return self._refuse(request, dataset, options["mode"], *refusal)
        if options["run_async"]:
            batch = services.ingest_enqueue(
                dataset=dataset, target=self.target, payload=raw, content_type=content_type,
                source=_source(content_type), user=request.user, mode=options["mode"], filename=filename,
                labels=labels,
            )  # fmt: skip
        else:
            batch = self._ingest(dataset, data, content_type, filename, len(raw), options["mode"], labels)
        return _batch_response(batch)

    def _refuse(self, request, dataset, mode, code: int, message: str) -> Response:
        content_type = (request.content_type or "").split(";")[0]
        batch = services.ingest_batch_start(
            dataset=dataset, target=self.target, source=_source(content_type), user=request.user, mode=mode,
            content_type=content_type[:100], size_bytes=_content_length(request),
        )  # fmt: skip
        services.ingest_batch_reject(batch=batch, message=message)
        return Response({"detail": message, "batch": IngestBatchSerializer(batch).data}, status=code)

    def _ingest(self, dataset, data, content_type, filename, size, mode, labels) -> IngestBatch:
        common = {"dataset": dataset, "data": data, "source": _source(content_type), "user": self.request.user,
                  "mode": mode, "content_type": content_type, "filename": filename, "size_bytes": size}  # fmt: skip
        if self.target == "points":
            return services.ingest_points(**common, labels=labels)
        return services.ingest_records(**common)

    @staticmethod
    def _labels(text: str | None) -> dict | None:
        if not text:
            return None
        try:
            labels = parse_labels_text(text)
        except ValueError as exc:
            raise ApplicationError(f"Bad labels parameter: {exc}", extra={"field": "labels"}) from exc
        problem = labels_problem(labels, KeyLimits.from_settings())
        if problem:
            raise ApplicationError(f"Bad labels parameter: {problem}", extra={"field": "labels"})
        return labels

    @staticmethod
    def _refusal(request) -> tuple[int, str] | None:
        """Uploads refused before reading them: too large, empty, or of a type we do not read."""
        length = _content_length(request)
        if length > settings.INGEST_MAX_UPLOAD_BYTES:
            return 413, f"The upload is {length} bytes; the limit is {settings.INGEST_MAX_UPLOAD_BYTES}."
        if length == 0:
            return 400, "The body is empty."
        media = (request.content_type or "").split(";")[0].strip().lower()
        accepted = {parser.media_type for parser in request.parsers}
        if media not in accepted:
            return 415, f"Unsupported content type {media or '(none)'!r}; send one of: {', '.join(sorted(accepted))}."
        return None

    @staticmethod
    def _body(request) -> tuple[object, str, str, bytes]:
        """(parsed data, content type, file name, raw bytes) of the upload."""
        media = request.content_type.split(";")[0].strip().lower()
        if media == "multipart/form-data":
            upload = request.FILES.get("file")
            if upload is None:
                raise ApplicationError("Send the CSV in a form field named 'file'.", extra={"field": "file"})
            raw = upload.read()
            return raw, "text/csv", upload.name, raw
        raw = request.body
        if media == "application/json":
            return request.data, media, "", raw
        return raw, "text/csv", "", raw


def _read_body(request) -> None:
    """Read the body now, so that INGEST_MAX_UPLOAD_BYTES bounds it rather than DATA_UPLOAD_MAX_MEMORY_SIZE.

    Django checks DATA_UPLOAD_MAX_MEMORY_SIZE the first time `body` is read; a body already read is kept
    as it is and parsed from there. Multipart files go to upload handlers and are not held by this.
    """
    django_request = request._request
    if django_request.content_type != "multipart/form-data" and not django_request._read_started:
        django_request._body = django_request.read()


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _source(content_type: str) -> str:
    return IngestSource.API_JSON if content_type == "application/json" else IngestSource.API_CSV


def _batch_response(batch: IngestBatch) -> Response:
    body = IngestBatchSerializer(batch).data
    if batch.status == IngestStatus.QUEUED:
        return Response(body, status=status.HTTP_202_ACCEPTED)
    if batch.status == IngestStatus.REJECTED:
        return Response({"detail": batch.message, "errors": batch.errors, "batch": body}, status=400)
    return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(
    parameters=UPLOAD_PARAMETERS,
    request={"application/json": dict, "text/csv": str, "multipart/form-data": dict},
    responses={201: IngestBatchSerializer, 202: IngestBatchSerializer, 400: OpenApiResponse(description="Rejected"),
               413: OpenApiResponse(description="Too large"), 415: OpenApiResponse(description="Wrong type")},
)  # fmt: skip
class PointsUploadView(_UploadView):
    """Upload points: JSON long rows (metric, labels, ts, value) or wide rows (ts + a column per metric), or CSV.

    Timestamps: ISO 8601 (an offset is honoured; none means UTC), epoch seconds or epoch milliseconds.
    Existing (series, ts) keys follow the dataset's duplicate policy (keep_first or overwrite).
    """

    target = "points"


@extend_schema(
    parameters=UPLOAD_PARAMETERS[:2],
    request={"application/json": dict, "text/csv": str, "multipart/form-data": dict},
    responses={201: IngestBatchSerializer, 202: IngestBatchSerializer, 400: OpenApiResponse(description="Rejected")},
)
class RecordsUploadView(_UploadView):
    """Upload rows of a table dataset: optional external_id and ts; every other field is a feature."""

    target = "records"
