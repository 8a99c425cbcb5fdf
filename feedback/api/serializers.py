from __future__ import annotations

from rest_framework import serializers

from feedback.models import AuditLog, Label, Retraining, Verdict
from feedback.services.labels import INCIDENT_VERDICTS


class LabelSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Label
        fields = ["id", "detector", "series", "anomaly", "verdict", "start_ts", "end_ts", "note", "source",
                  "similar_to", "current", "created_by", "created_at"]  # fmt: skip
        read_only_fields = fields


class VerdictSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=[(v, Verdict(v).label) for v in INCIDENT_VERDICTS])
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class BulkVerdictSerializer(VerdictSerializer):
    anomalies = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=500)


class MissedSerializer(serializers.Serializer):
    detector = serializers.IntegerField(min_value=1, required=False, help_text="Needed when several watch it.")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

    def validate(self, attrs):
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": "end must not be before start."})
        return attrs


class RetrainingSerializer(serializers.ModelSerializer):
    candidates = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    labels = serializers.PrimaryKeyRelatedField(many=True, read_only=True, help_text="The labels it learnt from.")

    class Meta:
        model = Retraining
        fields = ["id", "detector", "trigger", "status", "labels", "candidates", "metrics", "decision",
                  "created_at", "finished_at"]  # fmt: skip
        read_only_fields = fields


class AuditLogSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AuditLog
        fields = ["id", "created_at", "actor", "action", "target_type", "target_id", "data"]
        read_only_fields = fields
