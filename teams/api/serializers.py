from rest_framework import serializers

from teams.models import ApiToken, Team


class TeamSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["id", "name", "slug", "role", "created_at"]

    def get_role(self, team: Team) -> str | None:
        user = self.context["request"].user
        return next((m.role for m in team.memberships.all() if m.user_id == user.pk), None)


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at", "is_active"]
        read_only_fields = ["prefix", "created_at", "last_used_at", "revoked_at", "is_active"]


class IssuedTokenSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once. Store it now; only its hash is kept.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]
