"""Which purchases a campaign rewards, and with how many points: the rules of
API.md "Campaigns" one by one, then stacking, limits, budgets and returns."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignUsage
from campaigns.services import campaign_update
from checkout.services import purchase_record
from core.models import OutboxEvent
from insights.models import MemberScore
from loyalty.models import LedgerEntry, Lot, QualifyingMonth
from loyalty.services import Line, points_redeem
from tests.campaigns.helpers import bonuses_of, make_campaign, spent
from tests.helpers import (
    SYSTEM,
    account,
    assert_ledger_consistent,
    buy,
    give_back,
    set_tier,
    set_window,
)

pytestmark = pytest.mark.django_db


def bonus(body: dict) -> int:
    return sum(b["points"] for b in body["bonuses"])


def test_a_multiplier_adds_the_matching_amount_times_the_rate_times_factor_minus_one(make_member):
    make_campaign("DOUBLE", reward="2")
    member = make_member()
    body = buy(member, "499.00")
    assert body["bonuses"] == [{"campaign": "DOUBLE", "points": 499}]
    assert body["points_earned"] == 998
    assert account(member) == (0, 998)
    assert_ledger_consistent()


def test_the_multiplier_is_not_multiplied_again_by_the_tier(make_member):
    make_campaign("DOUBLE", reward="2")
    gold = set_tier(make_member(), "gold")
    body = buy(gold, "100.00")
    # 100 x 1.5 earned, plus 100 x 1 x (2 - 1)
    assert body["points_earned"] == 250 and bonus(body) == 100


def test_the_bonus_is_rounded_down(make_member):
    make_campaign("HALF", reward="1.5")
    body = buy(make_member(), "99.99")
    assert body["bonuses"] == [{"campaign": "HALF", "points": 49}]
    assert body["points_earned"] == 99 + 49


def test_a_purchase_is_in_the_window_by_its_occurred_at(make_member):
    now = timezone.now()
    make_campaign("LATER", starts_at=now + timedelta(hours=1), ends_at=now + timedelta(days=2))
    make_campaign("EARLIER", starts_at=now - timedelta(days=2), ends_at=now - timedelta(hours=1))
    member = make_member()
    assert buy(member, "100.00")["bonuses"] == []
    body = buy(member, "100.00", occurred_at=now - timedelta(hours=2))
    assert body["bonuses"] == [{"campaign": "EARLIER", "points": 100}]


def test_channel_store_and_tier(make_member):
    make_campaign("ONLINE", channel="online")
    make_campaign("SE-002-ONLY", reward=10, stores=["SE-002"], stackable=True)
    make_campaign("SILVER-UP", reward=7, tiers=["silver", "gold"], stackable=True)
    member = make_member()
    assert buy(member, "100.00")["bonuses"] == []
    assert buy(member, "100.00", store="SE-WEB", channel="online")["bonuses"] == [
        {"campaign": "ONLINE", "points": 100}
    ]
    assert buy(member, "100.00", store="SE-002")["bonuses"] == [
        {"campaign": "SE-002-ONLY", "points": 10}
    ]
    silver = set_tier(make_member(), "silver")
    assert buy(silver, "100.00")["bonuses"] == [{"campaign": "SILVER-UP", "points": 7}]


def test_the_tier_is_the_one_the_member_bought_in(make_member):
    """A purchase that upgrades the member does not meet a campaign for the
    new tier with the same receipt."""
    make_campaign("SILVER-UP", reward=7, tiers=["silver"])
    member = make_member()
    body = buy(member, "6000.00")
    assert body["tier_changed"] is True and body["bonuses"] == []
    member.refresh_from_db()
    assert buy(member, "10.00")["bonuses"] == [{"campaign": "SILVER-UP", "points": 7}]


def test_segments_need_the_members_score(make_member):
    make_campaign("WIN-BACK", reward=200, segments=["at_risk"])
    scored, unscored = make_member(), make_member()
    MemberScore.objects.create(
        member=scored, market=scored.market, as_of=timezone.now().date(), segment="at_risk"
    )
    assert buy(unscored, "100.00")["bonuses"] == []
    assert buy(scored, "100.00")["bonuses"] == [{"campaign": "WIN-BACK", "points": 200}]


def test_matching_lines_by_category_or_sku_and_never_what_earns_nothing(make_member):
    make_campaign("TOOLS", categories=["tools"], stackable=True)
    make_campaign("GARDEN-SKU", reward="3", skus=["HOSE"], stackable=True)
    make_campaign("GIFTS", reward=50, categories=["giftcards"], stackable=True)
    lines = [
        Line(sku="DRILL", category="tools", amount=Decimal("100.00")),
        Line(sku="HOSE", category="garden", amount=Decimal("50.00")),
        Line(sku="GIFT", category="giftcards", amount=Decimal("500.00")),
    ]
    body = buy(make_member(), lines=lines)
    assert body["bonuses"] == [
        {"campaign": "TOOLS", "points": 100},
        {"campaign": "GARDEN-SKU", "points": 100},
    ]
    assert body["points_earned"] == 150 + 200


def test_all_earning_lines_when_no_category_or_sku_is_named(make_member):
    make_campaign("ALL")
    lines = [
        Line(sku="DRILL", category="tools", amount=Decimal("100.00")),
        Line(sku="GIFT", category="giftcards", amount=Decimal("500.00")),
    ]
    assert buy(make_member(), lines=lines)["bonuses"] == [{"campaign": "ALL", "points": 100}]


def test_min_amount_counts_the_matching_lines(make_member):
    make_campaign("BIG-TOOLS", reward=100, categories=["tools"], min_amount=Decimal("500.00"))
    member = make_member()
    short = [
        Line(sku="DRILL", category="tools", amount=Decimal("499.00")),
        Line(sku="HOSE", category="garden", amount=Decimal("50.00")),
    ]
    assert buy(member, lines=short)["bonuses"] == []
    assert buy(member, "500.00")["bonuses"] == [{"campaign": "BIG-TOOLS", "points": 100}]


def test_points_come_once_per_purchase(make_member):
    make_campaign("HUNDRED", reward=100)
    lines = [Line(sku=f"S{i}", category="tools", amount=Decimal("10.00")) for i in range(5)]
    body = buy(make_member(), lines=lines)
    assert body["bonuses"] == [{"campaign": "HUNDRED", "points": 100}]
    assert body["points_earned"] == 150


def test_every_stackable_and_the_best_of_the_others(make_member):
    make_campaign("STACK-A", reward="2", stackable=True)
    make_campaign("STACK-B", reward=5, stackable=True)
    make_campaign("SOLO-50", reward=50)
    make_campaign("SOLO-80", reward=80)
    make_campaign("SOLO-X", reward="1.5")  # 50 points on 100
    body = buy(make_member(), "100.00")
    assert body["bonuses"] == [
        {"campaign": "STACK-A", "points": 100},
        {"campaign": "STACK-B", "points": 5},
        {"campaign": "SOLO-80", "points": 80},
    ]
    assert body["points_earned"] == 100 + 185


def test_paused_and_exhausted_campaigns_give_nothing(make_member):
    paused = make_campaign("PAUSED")
    campaign_update(actor=SYSTEM, campaign=paused, changes={"paused": True})
    small = make_campaign("SMALL", reward=60, budget_points=100, stackable=True)
    member = make_member()
    assert buy(member, "10.00")["bonuses"] == [{"campaign": "SMALL", "points": 60}]
    # the purchase that reaches the budget gets what is left
    assert buy(member, "10.00")["bonuses"] == [{"campaign": "SMALL", "points": 40}]
    assert buy(member, "10.00")["bonuses"] == []
    assert spent(small) == 100
    assert account(member) == (0, 30 + 100)


def test_a_per_member_limit_counts_rewarded_purchases(make_member):
    campaign = make_campaign("ONCE", reward=25, per_member_limit=1)
    member, other = make_member(), make_member()
    assert bonus(buy(member, "10.00")) == 25
    assert bonus(buy(member, "10.00")) == 0
    assert bonus(buy(other, "10.00")) == 25
    assert CampaignUsage.objects.get(campaign=campaign, member=member).purchases == 1


def test_a_limited_best_campaign_gives_way_to_the_next_best(make_member):
    make_campaign("BIG-ONCE", reward=80, per_member_limit=1)
    make_campaign("SMALL-ALWAYS", reward=30)
    member = make_member()
    assert buy(member, "10.00")["bonuses"] == [{"campaign": "BIG-ONCE", "points": 80}]
    assert buy(member, "10.00")["bonuses"] == [{"campaign": "SMALL-ALWAYS", "points": 30}]


def test_bonus_points_are_pending_expire_alike_and_are_not_qualifying(make_member):
    make_campaign("DOUBLE")
    member = make_member()
    body = buy(member, "300.00")
    entries = {e.kind: e for e in LedgerEntry.objects.filter(member=member)}
    assert entries["bonus"].points == 300 and entries["earn"].points == 300
    assert entries["bonus"].expires_on == entries["earn"].expires_on
    lots = {
        lot.entry.kind: lot for lot in Lot.objects.filter(member=member).select_related("entry")
    }
    assert lots["bonus"].matured is False and lots["earn"].matured is False
    assert lots["bonus"].available_on == lots["earn"].available_on
    assert body["points_status"] == "pending" and body["member"]["points"]["pending"] == 600
    assert (
        sum(QualifyingMonth.objects.filter(member=member).values_list("points", flat=True)) == 300
    )


def test_the_purchase_event_carries_the_bonus(make_member):
    make_campaign("DOUBLE")
    body = buy(make_member(), "120.00")
    event = OutboxEvent.objects.get(topic="points.earned", dedupe_key__endswith=body["purchase_id"])
    assert event.payload["points"] == 240 == body["points_earned"]


def test_returns_reverse_bonuses_in_proportion_to_the_matching_amount(make_member):
    campaign = make_campaign("TOOLS", categories=["tools"], budget_points=10_000)
    member = make_member()
    lines = [
        Line(sku="DRILL", category="tools", amount=Decimal("100.00")),
        Line(sku="HOSE", category="garden", amount=Decimal("100.00")),
    ]
    purchase = buy(member, lines=lines)
    assert purchase["points_earned"] == 300 and spent(campaign) == 100
    # the garden hose comes back: its own points, none of the tools bonus
    assert give_back(purchase, "100.00", sku="HOSE")["points_reversed"] == 100
    assert bonuses_of(campaign) == [(100, 0)]
    # half the drill: half its points and half the bonus, budget given back
    assert give_back(purchase, "50.00", sku="DRILL")["points_reversed"] == 100
    assert bonuses_of(campaign) == [(100, 50)] and spent(campaign) == 50
    assert give_back(purchase, "50.00", sku="DRILL")["points_reversed"] == 100
    assert bonuses_of(campaign) == [(100, 100)] and spent(campaign) == 0
    assert account(member) == (0, 0)
    assert_ledger_consistent()


def test_a_return_after_the_points_matured_takes_from_the_balance(make_member):
    set_window("SE", 0)
    make_campaign("DOUBLE")
    member = make_member()
    purchase = buy(member, "100.00")
    assert purchase["points_status"] == "available" and account(member) == (200, 0)
    assert give_back(purchase, "40.00")["points_reversed"] == 80
    assert account(member) == (120, 0)
    assert_ledger_consistent()


def test_a_replay_answers_the_same_bonuses(make_member):
    make_campaign("DOUBLE", budget_points=1000)
    member = make_member()
    occurred = timezone.now() - timedelta(minutes=3)
    args = dict(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        store_code="SE-001",
        receipt_id="R-REPLAY",
        channel="store",
        occurred_at=occurred,
        currency="SEK",
        total=Decimal("100.00"),
        lines=[Line(sku="SKU-1", category="tools", amount=Decimal("100.00"))],
    )
    first, replayed = purchase_record(**args)
    again, replayed_again = purchase_record(**args)
    assert (replayed, replayed_again) == (False, True)
    assert again == first and first["bonuses"] == [{"campaign": "DOUBLE", "points": 100}]
    assert spent(Campaign.objects.get(code="DOUBLE")) == 100


def test_a_bonus_on_a_purchase_that_earns_nothing_itself(make_member):
    make_campaign("VISIT", reward=100)
    member = make_member()
    body = buy(member, "0.50")
    assert body["points_earned"] == 100 and body["bonuses"] == [
        {"campaign": "VISIT", "points": 100}
    ]
    kinds = sorted(LedgerEntry.objects.filter(member=member).values_list("kind", "points"))
    assert kinds == [("bonus", 100)]
    assert account(member) == (0, 100)
    assert_ledger_consistent()


def test_a_bonus_pays_a_debt_first_when_available_at_once(make_member):
    set_window("SE", 0)
    member = make_member(points=100)
    spent_all = buy(member, "100.00")
    # spend everything, then return the purchase: a debt of 100
    points_redeem(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        points=200,
        store_code="SE-001",
        capture=True,
    )
    give_back(spent_all, "100.00")
    assert account(member) == (-100, 0)
    make_campaign("DOUBLE")
    body = buy(member, "100.00")
    assert body["points_earned"] == 200
    assert account(member) == (100, 0)
    assert_ledger_consistent()


@pytest.mark.postgres
def test_an_unbudgeted_multiplier_on_the_largest_receipt_fits_its_counters(make_member):
    # 999,999,999.00 x 1 x (100 - 1) is past 2^31: the bonus rows are
    # 64-bit like the ledger's (the purchase answered 500 with 32 bits).
    campaign = make_campaign("HUNDRED", reward="100")
    member = make_member()
    body = buy(member, "999999999.00")
    assert body["bonuses"] == [{"campaign": "HUNDRED", "points": 98_999_999_901}]
    assert bonuses_of(campaign) == [(98_999_999_901, 0)]
    assert account(member) == (0, 999_999_999 + 98_999_999_901)
    assert_ledger_consistent()
