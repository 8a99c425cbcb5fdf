from rest_framework import serializers

from teams.models import ApiToken, Team, TokenScope


class TeamSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["id", "name", "slug", "role", "created_at"]

    def get_role(self, team: Team) -> str | None:
        user = self.context["request"].user
        return next((m.role for m in team.memberships.all() if m.user_id == user.pk), None)


class ApiTokenSerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(read_only=True, help_text="Neither revoked nor expired.")

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "scope",
            "expires_at",
            "parent",
            "created_at",
            "last_used_at",
            "revoked_at",
            "is_active",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "The token's id, for DELETE /api/v1/tokens/{id}."},
            "name": {"help_text": "What the token is for, e.g. the script that uses it."},
            "scope": {"help_text": "read: safe methods only; write: also change data; admin: also manage tokens."},
            "expires_at": {"help_text": "The token is refused (401) from this moment on."},
            "parent": {
                "help_text": "The token that created this one (id); null when created by a signed-in user. "
                "Revoking a token revokes all tokens it created, recursively."
            },
            "created_at": {"help_text": "When the token was created."},
            "last_used_at": {"help_text": "Last authenticated request, to the minute; null if never used."},
            "revoked_at": {"help_text": "When the token (or a token it descends from) was revoked; final."},
        }


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, help_text="What the token is for, e.g. the script that uses it.")
    scope = serializers.ChoiceField(
        choices=TokenScope.choices,
        required=False,
        help_text="read < write < admin. Default: the creating token's scope when a token makes the request, "
        "else write. A token cannot create a token with a wider scope than its own.",
    )
    expires_at = serializers.DateTimeField(
        required=False,
        help_text="In the future and at most API_TOKEN_MAX_TTL_DAYS away (default API_TOKEN_DEFAULT_TTL_DAYS), "
        "and never later than the creating token's expiry.",
    )


class IssuedTokenSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once. Store it now; only its hash is kept.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]
