from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from teams.models import WRITE_ROLES, ApiToken, Membership, Team
from teams.services import hash_token_key


def team_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user).distinct()


def team_ids_for_user(*, user: AbstractBaseUser, writable: bool = False) -> QuerySet:
    memberships = Membership.objects.filter(user=user)
    if writable:
        memberships = memberships.filter(role__in=WRITE_ROLES)
    return memberships.values("team_id")


def role_for(*, user: AbstractBaseUser, team_id: int) -> str | None:
    return Membership.objects.filter(user=user, team_id=team_id).values_list("role", flat=True).first()


def api_token_by_key(*, key: str) -> ApiToken | None:
    return (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_token_key(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
