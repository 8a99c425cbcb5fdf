"""Quiet hours: a daily span of local time (it may wrap past midnight) in the rule's time zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def quiet_until(rule, when: datetime) -> datetime | None:
    """When the quiet hours around `when` end, or None when `when` is outside them (or there are none)."""
    start, end = rule.quiet_start, rule.quiet_end
    if start is None or end is None or start == end:
        return None
    local = when.astimezone(ZoneInfo(rule.timezone))
    now = local.time()
    inside = start <= now < end if start < end else (now >= start or now < end)
    if not inside:
        return None
    day = local.date() + timedelta(days=1) if start > end and now >= start else local.date()
    return _at(day, end, local.tzinfo)


def _at(day, clock: time, zone) -> datetime:
    # fold=0 and zoneinfo's arithmetic give the first such instant on a day the clocks change.
    return datetime.combine(day, clock, tzinfo=zone)
