from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from common.models import BaseModel


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    ANALYST = "analyst", "Analyst"
    ADMIN = "admin", "Admin"


# Roles allowed to change a team's data (ingest, configure, label).
WRITE_ROLES = (Role.ANALYST, Role.ADMIN)


class Team(BaseModel):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(BaseModel):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_unique_team_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES


class TokenScope(models.TextChoices):
    """What a token may do, each scope including the ones before it: read < write < admin."""

    READ = "read", "Read: safe methods only"
    WRITE = "write", "Write: read and change data"
    ADMIN = "admin", "Admin: write, and create or revoke tokens"

    @property
    def rank(self) -> int:
        return list(TokenScope).index(self)

    def covers(self, needed: str) -> bool:
        return self.rank >= TokenScope(needed).rank


class ApiToken(BaseModel):
    """A token for scripts. Only its SHA-256 is stored; the key is shown once, at creation.

    A token made by another token has it as `parent`: it never has a wider scope or a later expiry,
    and revoking the parent revokes it (and its own children). Revocation is final.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=12, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, help_text="read < write < admin.")
    expires_at = models.DateTimeField(help_text="The token is refused from this moment on.")
    # Revocation walks this column down the tree (recursive CTE); the FK's index serves it.
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        db_index=True,
        related_name="children",
        help_text="The token that created this one; empty when created by a signed-in user.",
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        """Usable now: neither revoked nor expired."""
        return self.revoked_at is None and not self.is_expired()

    def is_expired(self, *, now: datetime | None = None) -> bool:
        return self.expires_at <= (now or timezone.now())
