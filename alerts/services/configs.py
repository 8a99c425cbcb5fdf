"""Channels and rules: created and changed here, validated per field, never across teams."""

from __future__ import annotations

import math
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.channels.base import ConfigError
from alerts.channels.registry import CHANNELS, get_channel
from alerts.models import AlertRule, Channel, Notification
from common.exceptions import ApplicationError

RULE_SOURCES = ("detectors", "datasets", "forecast_configs")


def channel_validate(*, kind: str, config: dict | None, secrets: dict | None) -> tuple[dict, dict]:
    """(config, secrets) with defaults; ApplicationError with each bad field under "config" or "secrets"."""
    if kind not in CHANNELS:
        raise ApplicationError(
            f"Unknown channel kind {kind!r}.", extra={"kind": [f"choose one of: {', '.join(CHANNELS)}"]}
        )
    for name, value in (("config", config), ("secrets", secrets)):
        if value is not None and not isinstance(value, dict):
            raise ApplicationError(f"{name} must be an object.", extra={name: ["must be an object"]})
    cls = get_channel(kind)
    try:
        return cls.validate(config=config, secrets=secrets)
    except ConfigError as exc:
        secret_names = set(cls.secret_fields())
        extra: dict = {}
        for field, message in exc.errors.items():
            extra.setdefault("secrets" if field in secret_names else "config", {})[field] = [message]
        raise ApplicationError("Invalid channel configuration.", extra=extra) from exc


@transaction.atomic
def channel_create(*, team, name: str, kind: str, config: dict | None = None, secrets: dict | None = None,
                   enabled: bool = True, user=None) -> Channel:  # fmt: skip
    config, secrets = channel_validate(kind=kind, config=config, secrets=secrets)
    _unique_name(Channel, team, name)
    return Channel.objects.create(team=team, name=name, kind=kind, config=config, secrets=secrets, enabled=enabled,
                                  created_by=user)  # fmt: skip


@transaction.atomic
def channel_update(*, channel: Channel, name: str | None = None, config: dict | None = None,
                   secrets: dict | None = None, enabled: bool | None = None) -> Channel:  # fmt: skip
    """Secrets not given keep their value (they are never shown, so a form cannot send them back)."""
    merged_secrets = {**channel.secrets, **(secrets or {})}
    channel.config, channel.secrets = channel_validate(
        kind=channel.kind, config=channel.config if config is None else config, secrets=merged_secrets
    )
    if name is not None and name != channel.name:
        _unique_name(Channel, channel.team, name)
        channel.name = name
    if enabled is not None:
        if enabled and not channel.enabled:  # turned on again by hand: the reason it stopped is history
            channel.disabled_reason, channel.disabled_at = "", None
        channel.enabled = enabled
    channel.save()
    return channel


@transaction.atomic
def channel_send_test(*, channel: Channel) -> Notification:
    """A test message through the same path as alerts (claim, send, attempts); sent by a worker."""
    from alerts import tasks

    notification = Notification.objects.create(channel=channel, event="test", not_before=timezone.now())
    transaction.on_commit(lambda: tasks.send_when_due([notification.pk]))
    return notification


@transaction.atomic
def rule_save(*, rule: AlertRule, sources: dict, channels=None) -> AlertRule:
    """Save a rule and set its sources and channels, all of the rule's team (else ApplicationError)."""
    if not rule.pk:
        _unique_name(AlertRule, rule.team, rule.name)
    elif AlertRule.objects.filter(team=rule.team, name=rule.name).exclude(pk=rule.pk).exists():
        raise ApplicationError(f"The team already has a rule named {rule.name!r}.", extra={"name": ["already used"]})
    rule_check_team(team_id=rule.team_id, related={**sources, "channels": channels or []})
    rule_check(rule=rule)
    rule.full_clean(exclude=[*RULE_SOURCES, "channels"])
    try:
        rule.save()
    except IntegrityError as exc:
        raise ApplicationError("Invalid rule.", extra={"detail": [str(exc)]}) from exc
    for field, objects in sources.items():
        getattr(rule, field).set(objects)
    if channels is not None:
        rule.channels.set(channels)
    return rule


def rule_check(*, rule: AlertRule) -> None:
    errors = {}
    for field in ("cooldown", "grouping_window"):
        if getattr(rule, field) < timedelta(0):
            errors[field] = ["must not be negative"]
    if rule.min_deviation is not None and not (math.isfinite(rule.min_deviation) and rule.min_deviation >= 0):
        errors["min_deviation"] = ["must be a finite number >= 0"]
    if (rule.quiet_start is None) != (rule.quiet_end is None):
        errors["quiet_end" if rule.quiet_end is None else "quiet_start"] = ["quiet hours need a start and an end"]
    try:
        ZoneInfo(rule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = [f"{rule.timezone!r} is not a known time zone (e.g. Europe/Paris)"]
    if errors:
        raise ApplicationError("Invalid rule.", extra=errors)


def rule_check_team(*, team_id: int, related: dict) -> None:
    errors = {}
    for field, objects in related.items():
        for obj in objects:
            owner = obj.team_id if hasattr(obj, "team_id") else obj.dataset.team_id
            if owner != team_id:
                errors[field] = [f"{obj} is not in the rule's team"]
    if errors:
        raise ApplicationError("A rule's detectors, datasets, forecasts and channels are its team's.", extra=errors)


def _unique_name(model, team, name: str) -> None:
    if model.objects.filter(team=team, name=name).exists():
        raise ApplicationError(f"The team already has one named {name!r}.", extra={"name": ["already used"]})
