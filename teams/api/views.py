from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from teams import services
from teams.api.serializers import ApiTokenCreateSerializer, ApiTokenSerializer, IssuedTokenSerializer, TeamSerializer
from teams.models import ApiToken, Membership, Team, TokenScope
from teams.permissions import TokenScopePermission
from teams.selectors import team_list_for_user


class TeamViewSet(viewsets.ReadOnlyModelViewSet):
    """The teams you belong to, with your role in each."""

    serializer_class = TeamSerializer
    permission_classes = [IsAuthenticated, TokenScopePermission]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Team.objects.none()
        mine = Prefetch("memberships", queryset=Membership.objects.filter(user=self.request.user))
        return team_list_for_user(user=self.request.user).prefetch_related(mine)


class ApiTokenViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Your API tokens. The key is returned once, by create; delete revokes a token and every token it created.

    With a token, creating or revoking tokens needs the admin scope, and a new token is bounded by the
    creating token: no wider scope, no later expiry, and it is revoked with it.
    """

    serializer_class = ApiTokenSerializer
    permission_classes = [IsAuthenticated, TokenScopePermission]
    token_write_scope = TokenScope.ADMIN

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: IssuedTokenSerializer})
    def create(self, request, *args, **kwargs):
        serializer = ApiTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        parent = request.auth if isinstance(request.auth, ApiToken) else None
        issued = services.api_token_create(
            user=request.user,
            name=data["name"],
            scope=data.get("scope") or (parent.scope if parent else TokenScope.WRITE),
            expires_at=data.get("expires_at"),
            parent=parent,
        )
        issued.token.key = issued.key
        return Response(IssuedTokenSerializer(issued.token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.api_token_revoke(token=instance)
