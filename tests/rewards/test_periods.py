"""Allowances per period, counted in the market's time zone (the service's now=)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from club.models import Market, Tier
from core.errors import BenefitNotAvailable
from rewards.models import Benefit, BenefitUse
from rewards.selectors import member_benefits, usable_benefits
from rewards.services import benefit_use
from tests.helpers import SYSTEM

pytestmark = pytest.mark.django_db


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def use_at(member, code: str, now: datetime, store: str = "SE-001") -> dict:
    member.refresh_from_db()
    return benefit_use(actor=SYSTEM, member=member, benefit_code=code, store_code=store, now=now)


def remaining(member, code: str, now: datetime):
    return {b["code"]: b["remaining"] for b in member_benefits(member_id=member.pk, now=now)}[code]


# Stockholm is UTC+1 in winter: Sunday 2025-01-12 23:59 local is 22:59 UTC, and the
# week (Monday first, as in the demo markets) turns at 23:00 UTC.
SUNDAY_2359 = utc(2025, 1, 12, 22, 59)
SUNDAY_235959 = utc(2025, 1, 12, 22, 59, 59)
MONDAY_0000 = utc(2025, 1, 12, 23, 0)


def test_the_weekly_coffee_resets_exactly_at_local_midnight_on_monday(make_member):
    member = make_member(market="SE")
    first = use_at(member, "coffee", SUNDAY_2359)
    assert (first["remaining"], first["resets_on"]) == (0, "2025-01-13")
    with pytest.raises(BenefitNotAvailable):
        use_at(member, "coffee", SUNDAY_235959)
    assert remaining(member, "coffee", SUNDAY_235959) == 0
    assert remaining(member, "coffee", MONDAY_0000) == 1
    second = use_at(member, "coffee", MONDAY_0000)
    assert (second["remaining"], second["resets_on"]) == (0, "2025-01-20")
    starts = list(
        BenefitUse.objects.filter(member=member)
        .order_by("id")
        .values_list("period_start", flat=True)
    )
    assert [d.isoformat() for d in starts] == ["2025-01-06", "2025-01-13"]


def test_the_week_is_not_the_utc_week(make_member):
    member = make_member(market="SE")
    use_at(member, "coffee", MONDAY_0000)  # Monday 00:00 in Stockholm, still Sunday in UTC
    with pytest.raises(BenefitNotAvailable):
        use_at(member, "coffee", utc(2025, 1, 13, 0, 30))  # Monday 00:30 UTC, same week


def test_in_summer_the_week_turns_at_22_utc(make_member):
    member = make_member(market="SE")  # UTC+2: Sunday 2025-06-15 24:00 local = 22:00 UTC
    use_at(member, "coffee", utc(2025, 6, 15, 21, 59))
    with pytest.raises(BenefitNotAvailable):
        use_at(member, "coffee", utc(2025, 6, 15, 21, 59, 59))
    assert use_at(member, "coffee", utc(2025, 6, 15, 22, 0))["resets_on"] == "2025-06-23"


def test_a_market_whose_week_starts_on_sunday(make_member):
    Market.objects.filter(code="SE").update(first_day_of_week=6)
    member = make_member(market="SE")
    saturday_2359 = utc(2025, 1, 11, 22, 59)
    sunday_0000 = utc(2025, 1, 11, 23, 0)
    assert use_at(member, "coffee", saturday_2359)["resets_on"] == "2025-01-12"
    with pytest.raises(BenefitNotAvailable):
        use_at(member, "coffee", utc(2025, 1, 11, 22, 59, 59))
    assert use_at(member, "coffee", sunday_0000)["resets_on"] == "2025-01-19"
    # Sunday 23:59 is the same week as Sunday 00:00 there.
    with pytest.raises(BenefitNotAvailable):
        use_at(member, "coffee", SUNDAY_2359)


def test_the_period_is_the_members_markets(make_member):
    # Helsinki is an hour ahead of Stockholm: 23:30 UTC on Sunday is already Monday there.
    finn = make_member(market="FI")
    swede = make_member(market="SE")
    for member in (finn, swede):
        use_at(member, "coffee", utc(2025, 1, 12, 21, 30), store=f"{member.market.code}-001")
    late = utc(2025, 1, 12, 22, 30)  # Monday 00:30 in Helsinki, Sunday 23:30 in Stockholm
    assert use_at(finn, "coffee", late, store="FI-001")["resets_on"] == "2025-01-20"
    with pytest.raises(BenefitNotAvailable):
        use_at(swede, "coffee", late)


def test_two_member_evenings_a_year(make_member):
    member = make_member(market="SE")
    member.tier = Tier.objects.get(code="gold")
    member.save(update_fields=["tier"])
    first = use_at(member, "member-evening", utc(2025, 3, 1, 17))
    assert (first["remaining"], first["period"], first["resets_on"]) == (1, "year", "2026-01-01")
    assert use_at(member, "member-evening", utc(2025, 11, 1, 17))["remaining"] == 0
    with pytest.raises(BenefitNotAvailable):
        use_at(member, "member-evening", utc(2025, 12, 31, 22, 59))  # 23:59 on New Year's Eve
    assert remaining(member, "member-evening", utc(2025, 12, 31, 22, 59)) == 0
    # 2026-01-01 00:00 in Stockholm.
    again = use_at(member, "member-evening", utc(2025, 12, 31, 23, 0))
    assert (again["remaining"], again["resets_on"]) == (1, "2027-01-01")
    assert BenefitUse.objects.filter(member=member).count() == 3


def test_the_member_evening_is_held_only_in_store(make_member):
    member = make_member(market="SE")
    member.tier = Tier.objects.get(code="gold")
    member.save(update_fields=["tier"])
    with pytest.raises(BenefitNotAvailable):
        use_at(member, "member-evening", utc(2025, 3, 1, 17), store="SE-WEB")


@pytest.mark.parametrize(
    "period, now, resets_on",
    [
        ("day", utc(2025, 1, 12, 22, 59), "2025-01-13"),
        ("day", utc(2025, 1, 12, 23, 0), "2025-01-14"),
        ("month", utc(2025, 1, 31, 22, 59), "2025-02-01"),
        ("month", utc(2025, 1, 31, 23, 0), "2025-03-01"),
        ("month", utc(2024, 12, 15, 12), "2025-01-01"),
        ("year", utc(2025, 12, 31, 22, 59), "2026-01-01"),
        ("year", utc(2025, 12, 31, 23, 0), "2027-01-01"),
        ("unlimited", utc(2025, 1, 12, 12), None),
    ],
)
def test_resets_on_is_the_next_local_period_start(make_member, period, now, resets_on):
    benefit = Benefit.objects.create(
        code="test-perk", name="Perk", kind="partner", allowance=1, period=period, channel="both"
    )
    benefit.tiers.set(Tier.objects.all())
    member = make_member(market="SE")
    listed = {b["code"]: b for b in member_benefits(member_id=member.pk, now=now)}["test-perk"]
    assert (listed["remaining"], listed["resets_on"]) == (1, resets_on)
    body = use_at(member, "test-perk", now)
    assert (body["remaining"], body["resets_on"]) == (0, resets_on)
    with pytest.raises(BenefitNotAvailable):
        use_at(member, "test-perk", now)


def test_a_once_ever_benefit_never_comes_back(make_member):
    benefit = Benefit.objects.create(
        code="welcome-gift",
        name="Welcome gift",
        kind="free_item",
        allowance=1,
        period="unlimited",
        channel="store",
    )
    benefit.tiers.set(Tier.objects.all())
    member = make_member(market="SE")
    assert use_at(member, "welcome-gift", utc(2025, 1, 1, 12))["resets_on"] is None
    for later in (utc(2025, 1, 2, 12), utc(2030, 6, 1, 12)):
        with pytest.raises(BenefitNotAvailable):
            use_at(member, "welcome-gift", later)
        assert "welcome-gift" not in [
            b["code"] for b in usable_benefits(member_id=member.pk, now=later)
        ]


def test_usable_benefits_follow_the_period(make_member):
    member = make_member(market="SE")
    assert usable_benefits(member_id=member.pk, now=SUNDAY_2359) == [
        {"code": "coffee", "name": "Gratis kaffe", "remaining": 1}
    ]
    use_at(member, "coffee", SUNDAY_2359)
    assert usable_benefits(member_id=member.pk, now=SUNDAY_235959) == []
    assert usable_benefits(member_id=member.pk, now=MONDAY_0000) == [
        {"code": "coffee", "name": "Gratis kaffe", "remaining": 1}
    ]


def test_a_lowered_allowance_leaves_nothing_negative(make_member):
    member = make_member(market="SE")
    member.tier = Tier.objects.get(code="gold")
    member.save(update_fields=["tier"])
    use_at(member, "member-evening", utc(2025, 3, 1, 17))
    use_at(member, "member-evening", utc(2025, 3, 2, 17))
    Benefit.objects.filter(code="member-evening").update(allowance=1)
    assert remaining(member, "member-evening", utc(2025, 3, 3, 17)) == 0
    with pytest.raises(BenefitNotAvailable):
        use_at(member, "member-evening", utc(2025, 3, 3, 17))
