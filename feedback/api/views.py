from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from common.pagination import NewestFirstCursorPagination
from detectors.models import Detector
from detectors.selectors import anomalies_for_user, detector_series_ids, detectors_for_user
from feedback.api.serializers import (
    AuditLogSerializer,
    BulkVerdictSerializer,
    LabelSerializer,
    MissedSerializer,
    RetrainingSerializer,
    VerdictSerializer,
)
from feedback.models import AuditLog, Label, Retraining, RetrainingTrigger
from feedback.services import labels as label_services
from feedback.services import retraining as retraining_services
from ingestion.models import Series
from teams.permissions import TeamScopedMixin


def _labelled(call):
    try:
        return call()
    except label_services.LabelError as exc:
        raise ValidationError({"verdict": [str(exc)]}) from exc


class AnomalyLabelView(TeamScopedMixin, GenericAPIView):
    """Give an incident a verdict: confirmed, false_positive, expected or new_normal (with an optional note)."""

    serializer_class = VerdictSerializer
    team_field = "detector__dataset__team"

    def get_queryset(self):
        return anomalies_for_user(user=self.request.user)

    @extend_schema(request=VerdictSerializer, responses={201: LabelSerializer})
    def post(self, request, pk: int):
        anomaly = self.get_object()
        self.check_object_permissions(request, anomaly)
        body = VerdictSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        labels = _labelled(lambda: label_services.anomalies_label(anomalies=[anomaly], user=request.user, **data))
        return Response(LabelSerializer(labels[0]).data, status=status.HTTP_201_CREATED)


class AnomalyBulkLabelView(TeamScopedMixin, GenericAPIView):
    """One verdict on many incidents at once (all or none: an unknown id is a 400)."""

    serializer_class = BulkVerdictSerializer
    team_field = "detector__dataset__team"

    def get_queryset(self):
        return anomalies_for_user(user=self.request.user)

    @extend_schema(request=BulkVerdictSerializer, responses={201: LabelSerializer(many=True)})
    def post(self, request):
        body = BulkVerdictSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ids = sorted(set(body.validated_data["anomalies"]))
        found = list(self.get_queryset().filter(pk__in=ids).select_related("detector__dataset"))
        unknown = sorted(set(ids) - {a.pk for a in found})
        if unknown:
            raise ValidationError({"anomalies": [f"Not found: {', '.join(map(str, unknown))}."]})
        for anomaly in found:
            self.check_object_permissions(request, anomaly)
        data = {k: v for k, v in body.validated_data.items() if k != "anomalies"}
        labels = _labelled(lambda: label_services.anomalies_label(anomalies=found, user=request.user, **data))
        return Response(LabelSerializer(labels, many=True).data, status=status.HTTP_201_CREATED)


class SeriesMissedView(TeamScopedMixin, GenericAPIView):
    """Mark an anomaly the detector missed on a series range (which detector: needed when several watch it)."""

    serializer_class = MissedSerializer
    team_field = "dataset__team"
    queryset = Series.objects.select_related("dataset")

    @extend_schema(request=MissedSerializer, responses={201: LabelSerializer})
    def post(self, request, pk: int):
        series = self.get_object()
        self.check_object_permissions(request, series)
        body = MissedSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        detector = self._detector(series, body.validated_data.get("detector"))
        data = body.validated_data
        label = _labelled(lambda: label_services.missed_mark(
            detector=detector, series=series, start=data["start"], end=data["end"], user=request.user, note=data["note"]
        ))  # fmt: skip
        return Response(LabelSerializer(label).data, status=status.HTTP_201_CREATED)

    def _detector(self, series: Series, detector_id: int | None) -> Detector:
        watching = [
            d for d in detectors_for_user(user=self.request.user).filter(dataset_id=series.dataset_id)
            if detector_id in (None, d.pk) and series.pk in detector_series_ids(detector=d, among=[series.pk])
        ]  # fmt: skip
        if len(watching) == 1:
            return watching[0]
        if not watching:
            raise ValidationError({"detector": ["No detector of yours watches this series."]})
        raise ValidationError({"detector": ["Several detectors watch this series: say which one."]})


class LabelViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Verdicts, newest first: by detector, series, incident, verdict, source, or only the ones in force."""

    queryset = Label.objects.select_related("created_by")
    serializer_class = LabelSerializer
    team_field = "detector__dataset__team"
    filterset_fields = ["detector", "series", "anomaly", "verdict", "source", "current"]
    pagination_class = NewestFirstCursorPagination


class RetrainingViewSet(TeamScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Retrainings from labels: candidates, their figures against the active version, and the decision."""

    queryset = Retraining.objects.prefetch_related("labels", "candidates")
    serializer_class = RetrainingSerializer
    team_field = "detector__dataset__team"
    filterset_fields = ["detector", "status", "trigger"]
    pagination_class = NewestFirstCursorPagination

    @extend_schema(request=None, responses={202: RetrainingSerializer})
    @action(detail=False, methods=["post"], url_path=r"detector/(?P<detector_id>\d+)")
    def start(self, request, detector_id=None):
        """Retrain a detector from its labels now."""
        detector = detectors_for_user(user=request.user).filter(pk=detector_id).first()
        if detector is None:
            raise NotFound()
        self.require_write_role(detector.dataset.team_id)
        retraining = retraining_services.retraining_queue(
            detector=detector, trigger=RetrainingTrigger.MANUAL, user=request.user
        )
        return Response(RetrainingSerializer(retraining).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=RetrainingSerializer)
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """Make the versions this retraining replaced active again."""
        retraining = self.get_object()
        retraining_services.retraining_rollback(retraining=retraining, user=request.user)
        return Response(RetrainingSerializer(retraining).data)


class AuditLogViewSet(TeamScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Who labelled, promoted or rolled back what."""

    queryset = AuditLog.objects.select_related("actor")
    serializer_class = AuditLogSerializer
    team_field = "team"
    filterset_fields = ["action", "target_type", "target_id"]
    pagination_class = NewestFirstCursorPagination
