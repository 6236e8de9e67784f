"""Benefit periods, counted in the market's own time zone.

A period is named by the local date it starts on: a day by its date, a week
by the date of its first day (the market's `first_day_of_week`, from local
midnight), a month and a year by their 1st. A period that never resets is
named by `EVER`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

EVER = date(1970, 1, 1)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def period_bounds(
    period: str, *, time_zone: str, first_day_of_week: int, now: datetime
) -> tuple[date, date | None]:
    """(the start of the period `now` falls in, the start of the next one),
    both local dates of the market; the next is None for `unlimited`."""
    if period == "unlimited":
        return EVER, None
    today = now.astimezone(zone(time_zone)).date()
    if period == "day":
        return today, today + timedelta(days=1)
    if period == "week":
        start = today - timedelta(days=(today.weekday() - first_day_of_week) % 7)
        return start, start + timedelta(days=7)
    if period == "month":
        start = today.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)
    if period == "year":
        return date(today.year, 1, 1), date(today.year + 1, 1, 1)
    raise ValueError(f"unknown period {period!r}")
