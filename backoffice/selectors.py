"""Reads for the staff's screens that no domain below answers: the members'
headline counts and a member's points month by month. Everything else the
dashboard shows comes from `insights.selectors`."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import TruncMonth

from club.models import Market
from loyalty.models import LedgerEntry, Purchase
from members.models import Member

ACTIVE_DAYS = 365
NEW_DAYS = 30


def month_starts(*, last: dt.date, count: int) -> list[dt.date]:
    """The first days of the `count` months ending with `last`'s month, oldest first."""
    months = []
    year, month = last.year, last.month
    for _ in range(count):
        months.append(dt.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def members_overview(*, market: Market, now: dt.datetime) -> dict:
    """The market's members: `total` (every member not erased), `active`
    (of those, with a purchase in the last 365 days) and `new` (enrolled in
    the last 30 days). One query."""
    recent = Purchase.objects.filter(
        member=OuterRef("pk"), occurred_at__gte=now - dt.timedelta(days=ACTIVE_DAYS)
    )
    figures = (
        Member.objects.filter(market=market)
        .exclude(status=Member.Status.ERASED)
        .alias(purchased=Exists(recent))
        .aggregate(
            total=Count("pk"),
            active=Count("pk", filter=Q(purchased=True)),
            new=Count("pk", filter=Q(enrolled_at__gte=now - dt.timedelta(days=NEW_DAYS))),
        )
    )
    return {**figures, "active_days": ACTIVE_DAYS, "new_days": NEW_DAYS}


def member_points_by_month(*, member: Member, today: dt.date, months: int = 12) -> list[dict]:
    """The member's points (available and pending together, as the ledger
    sums them) at the end of each of the last `months` months, ending with
    the current one, and what each month added or took: [{"month":
    date, "change": int, "closing": int}]. Months in the market's time zone;
    one GROUP BY over the member's entries."""
    starts = month_starts(last=today, count=months)
    zone = ZoneInfo(member.market.time_zone)
    first = dt.datetime.combine(starts[0], dt.time.min, tzinfo=zone)
    entries = LedgerEntry.objects.filter(member_id=member.pk)
    opening = entries.filter(created_at__lt=first).aggregate(points=Sum("points"))["points"] or 0
    changes = {
        row["month"].date() if isinstance(row["month"], dt.datetime) else row["month"]: row[
            "points"
        ]
        for row in entries.filter(created_at__gte=first)
        .annotate(month=TruncMonth("created_at", tzinfo=zone))
        .values("month")
        .annotate(points=Sum("points"))
    }
    rows, closing = [], opening
    for start in starts:
        change = changes.get(start, 0)
        closing += change
        rows.append({"month": start, "change": change, "closing": closing})
    return rows
