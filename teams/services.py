from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from teams.models import ApiToken, Membership, Role, Team

TOKEN_PREFIX = "adp_"
# last_used_at is refreshed at most this often, so reads do not turn into writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def team_create(*, name: str, owner: AbstractBaseUser | None = None, slug: str = "") -> Team:
    team = Team.objects.create(name=name, slug=slug or slugify(name))
    if owner is not None:
        Membership.objects.create(team=team, user=owner, role=Role.ADMIN)
    return team


def membership_set(*, team: Team, user: AbstractBaseUser, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
    return membership


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # the only time the plain key exists


def api_token_create(*, user: AbstractBaseUser, name: str) -> IssuedToken:
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=key[:10], key_hash=hash_token_key(key))
    return IssuedToken(token=token, key=key)


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
    return token


def api_token_touch(*, token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
