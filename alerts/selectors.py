"""Reads for alerting."""

from __future__ import annotations

from alerts.models import AlertRule


def alerting_enabled() -> bool:
    """Whether any rule could alert: without one, incidents create no alerting work at all."""
    return AlertRule.objects.filter(enabled=True).exists()
