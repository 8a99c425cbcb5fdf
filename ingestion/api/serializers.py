from rest_framework import serializers

from ingestion.models import Dataset, IngestBatch, IngestMode
from teams.selectors import team_ids_for_user


class DatasetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ["id", "team", "name", "description", "kind", "duplicate_policy", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            # Only teams the caller may write to are valid choices; others read as "does not exist".
            fields["team"].queryset = fields["team"].queryset.filter(
                pk__in=team_ids_for_user(user=request.user, writable=True)
            )
        if self.instance is not None:
            fields["team"].read_only = True
            fields["kind"].read_only = True
        return fields


class IngestBatchSerializer(serializers.ModelSerializer):
    class Meta:
        model = IngestBatch
        fields = [
            "id", "dataset", "target", "source", "mode", "status", "filename", "content_type", "size_bytes",
            "received", "inserted", "updated", "duplicate", "rejected", "errors", "message", "labels",
            "created_by", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class UploadQuerySerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=IngestMode.choices, default=IngestMode.STRICT)
    labels = serializers.CharField(
        required=False, help_text="Labels for every point of a wide upload: key=value;key=value or a JSON object."
    )
    # `async` is a keyword in Python, so the field is declared with its own source name.
    run_async = serializers.BooleanField(default=False, required=False)

    def to_internal_value(self, data):
        data = data.copy()
        if "async" in data:
            data["run_async"] = data["async"]
        return super().to_internal_value(data)
