"""Team scoping shared by every API view: one mixin, one permission; and what a token's scope allows.

Querysets only ever contain the caller's teams' rows, so another team's object is a 404,
never a 403. Among visible objects, writes need the analyst or admin role (else 403).
"""

from __future__ import annotations

from rest_framework import permissions
from rest_framework.exceptions import PermissionDenied

from teams.models import WRITE_ROLES, ApiToken, TokenScope
from teams.selectors import role_for, team_ids_for_user


class TeamWritePermission(permissions.BasePermission):
    message = "Your role in this team is read-only (viewer); analyst or admin is needed."

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return role_for(user=request.user, team_id=view.team_id_of(obj)) in WRITE_ROLES


class TokenScopePermission(permissions.BasePermission):
    """What an API token's scope allows. Session requests (request.auth is None) are not limited by scope.

    Safe methods need `read`; other methods need the view's `token_write_scope` (`write` unless the view
    asks more: the token endpoints ask `admin`).
    """

    message = "This token's scope does not allow this request."

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if token is None:
            return True
        if not isinstance(token, ApiToken):  # an authentication this class does not know: refuse
            return False
        if request.method in permissions.SAFE_METHODS:
            needed = TokenScope.READ
        else:
            needed = TokenScope(getattr(view, "token_write_scope", TokenScope.WRITE))
        if TokenScope(token.scope).covers(needed):
            return True
        self.message = f"This token has the '{token.scope}' scope; this request needs the '{needed}' scope."
        return False


class TeamScopedMixin:
    """Filter `queryset` to the caller's teams through `team_field` (a lookup path to Team)."""

    team_field = "team"
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission, TeamWritePermission]

    def get_queryset(self):
        parent = getattr(super(), "get_queryset", None)  # plain APIViews have none
        queryset = parent() if parent else self.queryset.all()
        return queryset.filter(**{f"{self.team_field}__in": team_ids_for_user(user=self.request.user)})

    def team_id_of(self, obj) -> int:
        for part in self.team_field.split("__"):
            obj = getattr(obj, part)
        return obj.pk

    def require_write_role(self, team_id: int) -> None:
        if role_for(user=self.request.user, team_id=team_id) not in WRITE_ROLES:
            raise PermissionDenied(TeamWritePermission.message)
