"""Dates in a market's time zone, and when a receipt or an event may have
occurred."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

from club.models import Market
from core.errors import ValidationFailed

FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_BACKDATE = timedelta(days=90)


def local_date(market: Market, moment: datetime) -> date:
    return moment.astimezone(ZoneInfo(market.time_zone)).date()


def today_for(market: Market, now: datetime | None = None) -> date:
    return local_date(market, now or timezone.now())


def occurred_at_check(occurred_at: datetime, now: datetime) -> None:
    """A receipt's or an event's time: at most 5 minutes ahead of the
    service's clock (tills' clocks drift) and at most 90 days old."""
    if occurred_at > now + FUTURE_TOLERANCE:
        raise ValidationFailed(
            "occurred_at lies in the future.", errors={"occurred_at": ["Lies in the future."]}
        )
    if occurred_at < now - MAX_BACKDATE:
        raise ValidationFailed(
            "occurred_at is more than 90 days old.",
            errors={"occurred_at": ["More than 90 days old."]},
        )


def market_days(as_of: datetime) -> list[tuple[Market, date]]:
    """Every market with its local date at `as_of`: what a daily job walks."""
    return [(market, local_date(market, as_of)) for market in Market.objects.order_by("code")]
