from django.db.models import Prefetch
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from teams import services
from teams.api.serializers import ApiTokenSerializer, IssuedTokenSerializer, TeamSerializer
from teams.models import ApiToken, Membership, Team
from teams.selectors import team_list_for_user


class TeamViewSet(viewsets.ReadOnlyModelViewSet):
    """The teams you belong to, with your role in each."""

    serializer_class = TeamSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Team.objects.none()
        mine = Prefetch("memberships", queryset=Membership.objects.filter(user=self.request.user))
        return team_list_for_user(user=self.request.user).prefetch_related(mine)


class ApiTokenViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Your API tokens. The key is returned once, by create; delete revokes a token."""

    serializer_class = ApiTokenSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    def create(self, request, *args, **kwargs):
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.api_token_create(user=request.user, name=serializer.validated_data["name"])
        issued.token.key = issued.key
        return Response(IssuedTokenSerializer(issued.token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.api_token_revoke(token=instance)
