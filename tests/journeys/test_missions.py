"""The welcome journey counted from purchases and returns: windows at their
edges in the market's time zone, a return undoing progress, completing and
paying once, and what a purchase costs outside the journey."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from club.dates import local_date
from club.models import Market
from core.actors import SYSTEM
from journeys.models import MemberMission, Mission
from journeys.services import journey_on_purchase, journey_snapshot, member_missions
from loyalty.ledger import expiry_for
from loyalty.models import LedgerEntry, Lot, PointsAccount
from loyalty.services import Line, points_bonus
from members.models import Member
from rewards.models import Reward, Voucher
from tests.helpers import (
    assert_ledger_consistent,
    bonus_entries,
    buy,
    enrol_at,
    give_back,
    local,
    mission_row,
)

pytestmark = pytest.mark.django_db


def balance(member) -> tuple[int, int]:
    account = PointsAccount.objects.get(member_id=member.pk)
    return account.balance, account.pending


# --- points_bonus -------------------------------------------------------------


def test_points_bonus_is_available_at_once_and_expires_like_earned_points(make_member):
    member = make_member()
    entry = points_bonus(member=member, points=150, reason="Mission: test", reference="mission:x")
    market = member.market
    today = local_date(market, timezone.now())
    assert entry.kind == "bonus" and entry.points == 150 and entry.reference == "mission:x"
    assert entry.expires_on == expiry_for(market, today)
    lot = Lot.objects.get(entry=entry)
    assert lot.matured and lot.remaining == 150 and lot.available_on == today
    assert balance(member) == (150, 0)
    assert_ledger_consistent()


def test_points_bonus_in_the_callers_transaction_rolls_back_with_it(make_member):
    member = make_member()
    with pytest.raises(RuntimeError), transaction.atomic():
        points_bonus(member=member, points=80, reason="r", reference="ref")
        assert balance(member) == (80, 0)
        raise RuntimeError("the caller fails")
    assert balance(member) == (0, 0)
    assert not LedgerEntry.objects.filter(member=member).exists()


def test_points_bonus_pays_a_debt_first(make_member):
    from loyalty.services import points_adjust

    member = make_member(points=100)
    points_adjust(actor=SYSTEM, member=member, points=-150, reason="a correction")
    assert balance(member) == (-50, 0)
    points_bonus(member=member, points=200, reason="gift", reference="gift:x")
    assert balance(member) == (150, 0)
    assert Lot.objects.get(entry__reference="gift:x").remaining == 150
    assert_ledger_consistent()


# --- purchases ----------------------------------------------------------------


def test_a_first_purchase_completes_its_mission_and_pays_once(journey_on, make_member):
    member = make_member()
    body = buy(member, "499.00")
    row = mission_row(member, "first-purchase")
    assert row is not None and row.status == "completed" and row.rewarded_at is not None
    assert (row.current, row.target) == (1, 1)
    assert row.reward_entry.points == 200 and row.reward_entry.kind == "bonus"
    # The purchase's answer shows the member's points after the reward.
    assert body["member"]["points"]["balance"] == 200
    assert body["member"]["points"]["pending"] == 499
    buy(member, "10.00")
    assert len(bonus_entries(member, "mission:first-purchase")) == 1
    assert balance(member) == (200, 509)
    assert_ledger_consistent()


def test_store_and_online_needs_both_channels_and_pays_a_coffee_voucher(journey_on, make_member):
    member = make_member()
    assert Mission.objects.get(code="store-and-online").reward.code == "coffee-voucher"
    buy(member, "50.00", channel="store")
    buy(member, "60.00", channel="store")
    row = mission_row(member, "store-and-online")
    assert (row.status, row.current, row.target) == ("in_progress", 1, 2)
    buy(member, "70.00", store="SE-WEB", channel="online")
    row.refresh_from_db()
    assert (row.status, row.current) == ("completed", 2)
    assert row.voucher is not None and row.voucher.reward.code == "coffee-voucher"
    assert row.voucher.source == "mission" and row.voucher.points_cost == 0
    assert Voucher.objects.filter(member=member).count() == 1
    assert_ledger_consistent()


def test_second_purchase_within_n_days_of_the_first(journey_on, make_member):
    now = timezone.now()
    early = make_member()
    enrol_at(early, now - timedelta(days=50))
    buy(early, "20.00", occurred_at=now - timedelta(days=49))
    buy(early, "20.00", occurred_at=now - timedelta(days=10))  # 39 days later: too late
    row = mission_row(early, "second-purchase")
    assert (row.status, row.current) == ("in_progress", 1)
    buy(early, "20.00", occurred_at=now - timedelta(days=1))  # 9 days after the last one
    row.refresh_from_db()
    assert (row.status, row.current) == ("completed", 2)
    assert len(bonus_entries(early, "mission:second-purchase")) == 1


def test_a_category_mission_counts_only_its_category(journey_on, make_member):
    Mission.objects.create(
        code="buy-paint",
        name="Buy paint",
        goal="category_purchase",
        category="paint",
        window_start_day=0,
        window_end_day=30,
        reward_points=75,
    )
    from journeys.services import journey_forget

    journey_forget()
    member = make_member()
    buy(member, "30.00", category="tools")
    assert mission_row(member, "buy-paint") is None
    buy(
        member,
        "0.00",
        category="paint",
        lines=[
            Line(sku="A", amount=Decimal("40.00"), category="tools"),
            Line(sku="B", amount=Decimal("25.00"), category="paint"),
        ],
    )
    assert mission_row(member, "buy-paint").status == "completed"
    assert len(bonus_entries(member, "mission:buy-paint")) == 1


def test_a_purchase_of_excluded_categories_alone_does_not_count(journey_on, make_member):
    member = make_member()
    buy(member, "500.00", category="giftcards")
    assert not MemberMission.objects.filter(member=member).exists()


# --- windows at their edges, in the market's time zone ---------------------------


def _enrolled_just_after_local_midnight(make_member, days_ago: int):
    """A member enrolled at 00:30 Stockholm time `days_ago` days ago: in UTC
    that is still the day before, so UTC days and local days differ."""
    today = local_date(Market.objects.get(code="SE"), timezone.now())
    day0 = today - timedelta(days=days_ago)
    member = enrol_at(make_member(), local(day0, 0, 30))
    assert member.enrolled_at.astimezone(UTC).date() == day0 - timedelta(days=1)
    return member, day0


def test_the_last_day_of_the_window_counts_in_market_time(journey_on, make_member):
    member, day0 = _enrolled_just_after_local_midnight(make_member, 40)
    last = local(day0 + timedelta(days=30), 23, 30)  # day 30 in Stockholm, day 31 in UTC
    assert (last.astimezone(UTC).date() - day0 + timedelta(days=1)).days == 31
    buy(member, "100.00", occurred_at=last)
    row = mission_row(member, "first-purchase")
    assert row is not None and row.status == "completed"
    assert row.deadline == day0 + timedelta(days=30)
    assert len(bonus_entries(member, "mission:first-purchase")) == 1


def test_the_first_day_after_the_window_does_not_count(journey_on, make_member):
    member, day0 = _enrolled_just_after_local_midnight(make_member, 40)
    after = local(day0 + timedelta(days=31), 0, 30)  # day 31 in Stockholm
    buy(member, "100.00", occurred_at=after)
    assert mission_row(member, "first-purchase") is None
    assert bonus_entries(member, "mission:first-purchase") == []
    # The 60- and 90-day missions still count it.
    assert mission_row(member, "second-purchase").current == 1
    assert mission_row(member, "store-and-online").current == 1


def test_a_purchase_before_the_window_opens_does_not_count(journey_on, make_member):
    Mission.objects.create(
        code="later",
        name="Later",
        goal="first_purchase",
        window_start_day=5,
        window_end_day=20,
        reward_points=10,
    )
    from journeys.services import journey_forget

    journey_forget()
    member, day0 = _enrolled_just_after_local_midnight(make_member, 10)
    buy(member, "10.00", occurred_at=local(day0 + timedelta(days=4), 23, 50))
    assert mission_row(member, "later") is None
    buy(member, "10.00", occurred_at=local(day0 + timedelta(days=5), 0, 10))
    assert mission_row(member, "later").status == "completed"


# --- returns --------------------------------------------------------------------


def test_a_returned_purchase_no_longer_counts_before_completion(journey_on, make_member):
    member = make_member()
    first = buy(member, "80.00", channel="store")
    row = mission_row(member, "store-and-online")
    assert row.current == 1
    give_back(first, "30.00")  # a partial return: it still counts
    row.refresh_from_db()
    assert row.current == 1 and len(row.progress["purchases"]) == 1
    give_back(first, "50.00")  # now all of it is back
    row.refresh_from_db()
    assert (row.status, row.current, row.progress["purchases"]) == ("in_progress", 0, [])
    second = mission_row(member, "second-purchase")
    assert (second.current, second.progress["purchases"]) == (0, [])
    buy(member, "25.00", store="SE-WEB", channel="online")
    row.refresh_from_db()
    assert (row.status, row.current) == ("in_progress", 1)  # the store purchase is gone
    second.refresh_from_db()
    assert (second.status, second.current) == ("in_progress", 1)
    assert_ledger_consistent()


def test_a_completed_mission_stays_completed_and_paid_after_a_return(journey_on, make_member):
    member = make_member()
    body = buy(member, "499.00")
    assert mission_row(member, "first-purchase").status == "completed"
    give_back(body, "499.00")
    row = mission_row(member, "first-purchase")
    assert row.status == "completed" and row.rewarded_at is not None
    assert balance(member) == (200, 0)  # the purchase's points back, the reward kept
    assert_ledger_consistent()


def test_returning_one_of_two_store_purchases_keeps_the_progress(journey_on, make_member):
    member = make_member()
    first = buy(member, "40.00", channel="store")
    buy(member, "45.00", channel="store")
    give_back(first, "40.00")
    row = mission_row(member, "store-and-online")
    assert row.current == 1 and len(row.progress["purchases"]) == 1
    buy(member, "10.00", store="SE-WEB", channel="online")
    row.refresh_from_db()
    assert row.status == "completed"


# --- once, and the cost of it ------------------------------------------------------


def test_a_completed_mission_is_never_completed_or_paid_again(journey_on, make_member):
    member = make_member()
    buy(member, "10.00")
    row = mission_row(member, "first-purchase")
    # Someone tries to complete it again directly: the row is no longer in progress.
    assert (
        MemberMission.objects.filter(pk=row.pk, status="in_progress").update(status="completed")
        == 0
    )
    from journeys.services import journey_snapshot as snap
    from journeys.services import mission_reward_pay

    spec = snap().by_id(row.mission_id)
    assert mission_reward_pay(member=member, spec=spec, row_id=row.pk, now=timezone.now()) is False
    assert len(bonus_entries(member, "mission:first-purchase")) == 1


def test_a_voucher_out_of_stock_leaves_the_mission_completed_and_unrewarded(
    journey_on, make_member
):
    Reward.objects.filter(code="coffee-voucher").update(stock=0)
    member = make_member()
    buy(member, "10.00", channel="store")
    body = buy(member, "10.00", store="SE-WEB", channel="online")
    assert body["points_earned"] == 10  # the purchase is booked all the same
    row = mission_row(member, "store-and-online")
    assert row.status == "completed" and row.rewarded_at is None and row.voucher is None
    Reward.objects.filter(code="coffee-voucher").update(stock=5)
    from journeys.services import missions_close

    missions_close()
    row.refresh_from_db()
    assert row.rewarded_at is not None and row.voucher.reward.code == "coffee-voucher"
    missions_close()
    assert Voucher.objects.filter(member=member).count() == 1


def test_a_purchase_outside_the_journey_costs_no_query(journey_on, make_member):
    member = enrol_at(make_member(), timezone.now() - timedelta(days=200))
    journey_snapshot()  # the process's snapshot is warm, as it is on a busy server
    with CaptureQueriesContext(connection) as queries:
        done = journey_on_purchase(
            member=member,
            purchase="p-1",
            channel="store",
            categories={"tools"},
            occurred_at=timezone.now(),
        )
    assert done == [] and len(queries) == 0


def test_a_purchase_inside_the_journey_costs_a_couple_of_small_queries(journey_on, make_member):
    member = make_member()
    buy(member, "10.00")  # completes the first purchase; two missions in progress
    member = Member.objects.select_related("market", "tier").get(pk=member.pk)  # as purchases do
    journey_snapshot()
    with CaptureQueriesContext(connection) as queries:
        done = journey_on_purchase(
            member=member,
            purchase="p-2",
            channel="store",
            categories={"tools"},
            occurred_at=timezone.now(),
        )
    assert done == []
    # Read the member's rows, update the two in progress in one statement.
    assert len(queries) == 2, [q["sql"] for q in queries]
    assert mission_row(member, "second-purchase").current == 1  # the same day: one visit
    assert len(mission_row(member, "second-purchase").progress["purchases"]) == 2


def test_the_journey_switched_off_counts_nothing(settings, demo, make_member):
    settings.LOJAL_JOURNEY_ENABLED = False
    member = make_member()
    buy(member, "10.00")
    assert not MemberMission.objects.filter(member=member).exists()


def test_the_missions_of_a_new_member(journey_on, make_member):
    member = make_member()
    buy(member, "10.00")
    missions = {m["code"]: m for m in member_missions(member=member)}
    assert list(missions) == [
        "complete-profile",
        "first-purchase",
        "second-purchase",
        "store-and-online",
        "welcome-survey",
    ]
    today = local_date(member.market, timezone.now())
    first = missions["first-purchase"]
    assert first["status"] == "completed" and first["progress"] == {"current": 1, "target": 1}
    assert first["deadline"] == (today + timedelta(days=30)).isoformat()
    assert first["reward"] == {"points": 200} and first["completed_at"]
    assert missions["store-and-online"]["reward"] == {"reward": "coffee-voucher"}
    assert missions["store-and-online"]["progress"] == {"current": 1, "target": 2}
    assert missions["complete-profile"]["status"] == "in_progress"
    assert missions["complete-profile"]["name"] == "Fyll i din profil"  # the member's language
