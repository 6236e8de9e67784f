"""Reads of what the club learns: NPS, cohorts, segments, models, liability.

Every report returns a dict shaped exactly as the contract's JSON answer
(`/api/v1/insights/...`), JSON-ready (dates and months as strings, money as
decimal strings), so the API and the admin's dashboard render the same thing.
"""

from __future__ import annotations

import datetime as dt

from club.models import Market
from insights.models import MemberScore
from members.models import Member


def member_segment(*, member_id: int) -> str | None:
    """The member's value segment from the last refresh, or None (never
    scored, never purchased, or no consent to profiling)."""
    return MemberScore.objects.filter(member_id=member_id).values_list("segment", flat=True).first()


def nps_report(
    *, market: Market, date_from: dt.date, date_to: dt.date, group_by: str | None = None
) -> dict:
    """Net Promoter Score of the market's answers occurred from `date_from` to
    `date_to` (both included, market time), each member counted once with
    their latest answer. `group_by` is None or one of touchpoint, store, tier,
    month; then `groups` lists the same figures per key. The answer of
    `GET /api/v1/insights/nps`: {"market", "from", "to", "responses",
    "promoters", "passives", "detractors", "nps", "ci95", ["groups"]}."""
    raise NotImplementedError


def retention_report(*, market: Market, month_from: dt.date, month_to: dt.date) -> dict:
    """Purchase retention by enrolment month, cohorts `month_from` to
    `month_to` (dates on the 1st of their month). The answer of
    `GET /api/v1/insights/retention`: {"market", "cohorts": [{"cohort",
    "members", "active", "retention"}]}."""
    raise NotImplementedError


def segments_report(*, market: Market) -> dict:
    """The value segments of the market's last `insights_refresh`. The answer
    of `GET /api/v1/insights/segments`: {"market", "as_of", "members",
    "segments": [{"segment", "action", "members", "share", "revenue_12m",
    "revenue_share"}]}; `as_of` null before the first refresh."""
    raise NotImplementedError


def model_report(*, market: Market) -> dict | None:
    """The purchase (BG/NBD) and spend (Gamma-Gamma) models of the market's
    last `insights_refresh`, or None when none was fitted yet. The answer of
    `GET /api/v1/insights/model`: {"market", "as_of", "time_unit", "members",
    "purchase_model", "spend_model"}."""
    raise NotImplementedError


def liability_report(*, market: Market, as_of: dt.date | None = None) -> dict:
    """What the club owes in points, straight from the ledger, at the end of
    `as_of` (default today, market time). The answer of
    `GET /api/v1/insights/liability`: {"market", "currency", "as_of",
    "point_value", "outstanding", "held", "expiring", "months",
    "breakage_rate_12m"}."""
    raise NotImplementedError


def member_insights(*, member: Member) -> dict:
    """One member's scores, churn, value and latest NPS answer. The answer of
    `GET /api/v1/members/{member_number}/insights`: {"member_number", "as_of",
    "profiling", "rfm", "churn", "value", "nps"}."""
    raise NotImplementedError
