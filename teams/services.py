from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from common.exceptions import ApplicationError
from teams.models import ApiToken, Membership, Role, Team, TokenScope

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


def _token_error(message: str, field: str) -> ApplicationError:
    return ApplicationError(message, extra={"field": field})


def api_token_check_expiry(
    *, expires_at: datetime, parent: ApiToken | None = None, now: datetime | None = None
) -> None:
    """Raise ApplicationError (field expires_at) unless it is in the future, within the maximum and the parent's."""
    now = now or timezone.now()
    if expires_at <= now:
        raise _token_error("expires_at must be in the future.", "expires_at")
    longest = now + timedelta(days=settings.API_TOKEN_MAX_TTL_DAYS)
    if expires_at > longest:
        raise _token_error(
            f"expires_at may be at most {settings.API_TOKEN_MAX_TTL_DAYS} days away ({longest.isoformat()}).",
            "expires_at",
        )
    if parent is not None and expires_at > parent.expires_at:
        raise _token_error(
            f"expires_at may not be later than the creating token's ({parent.expires_at.isoformat()}).", "expires_at"
        )


def _lock_parent(*, parent: ApiToken, user: AbstractBaseUser, scope: str, now: datetime) -> ApiToken:
    """The parent row, locked until commit, so a concurrent revocation either sees the child or comes first."""
    parent = ApiToken.objects.select_for_update().get(pk=parent.pk)
    if parent.revoked_at is not None or parent.is_expired(now=now):
        raise _token_error("The creating token is revoked or expired.", "parent")
    if parent.user_id != user.pk:
        raise _token_error("A token can only create tokens for its own user.", "parent")
    if not TokenScope(parent.scope).covers(scope):
        raise _token_error(f"scope may not be wider than the creating token's ({parent.scope}).", "scope")
    return parent


@transaction.atomic
def api_token_create(
    *,
    user: AbstractBaseUser,
    name: str,
    scope: str,
    expires_at: datetime | None = None,
    parent: ApiToken | None = None,
) -> IssuedToken:
    """A new token. With a parent (the token making the request) it is bounded by it and dies with it."""
    if scope not in TokenScope.values:
        raise _token_error(f"scope must be one of: {', '.join(TokenScope.values)}.", "scope")
    now = timezone.now()
    if parent is not None:
        parent = _lock_parent(parent=parent, user=user, scope=scope, now=now)
    if expires_at is None:
        expires_at = now + timedelta(days=settings.API_TOKEN_DEFAULT_TTL_DAYS)
        if parent is not None:
            expires_at = min(expires_at, parent.expires_at)
    api_token_check_expiry(expires_at=expires_at, parent=parent, now=now)
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=key[:10],
        key_hash=hash_token_key(key),
        scope=scope,
        expires_at=expires_at,
        parent=parent,
    )
    return IssuedToken(token=token, key=key)


# Every token below the root (the parent_id index serves each step), revoked in one statement.
_REVOKE_DESCENDANTS = f"""
    WITH RECURSIVE tree(id) AS (
        SELECT id FROM {ApiToken._meta.db_table} WHERE parent_id = %(root)s
        UNION
        SELECT child.id FROM {ApiToken._meta.db_table} child JOIN tree ON child.parent_id = tree.id
    )
    UPDATE {ApiToken._meta.db_table} SET revoked_at = %(now)s, updated_at = %(now)s
    WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL
"""


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke the token and every token descending from it. Final: nothing un-revokes a token.

    The token's own row is updated first, which takes its row lock: a child being created under it (creation
    locks the parent row) either committed before, and the next statement, with a fresh snapshot, sees it, or
    waits and then finds its parent revoked. The same holds one level down, so the descendants statement runs
    again until it finds nothing left: a grandchild committed while it waited on a child's lock is caught by the
    next pass. Descendants already revoked keep their original revoked_at.
    """
    now = timezone.now()
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now, updated_at=now)
    with connection.cursor() as cursor:
        while True:
            cursor.execute(_REVOKE_DESCENDANTS, {"root": token.pk, "now": now})
            if cursor.rowcount == 0:
                break
    token.refresh_from_db(fields=["revoked_at", "updated_at"])
    return token


def api_token_touch(*, token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
