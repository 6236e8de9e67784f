"""The contract's largest amounts fit every counter: a purchase total goes up
to 1,000,000,000.00, and its points are the market's rate (up to 9,999.9999
per unit) times the tier's multiplier, added up over a member's lifetime.
Points and their sums are 64-bit; with 32-bit counters the second purchase
of 999,999,999.00 overflowed (500), and the member could never earn again."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from club.models import Market
from loyalty import lifecycle
from loyalty.models import LedgerEntry, Lot, PointsAccount, QualifyingMonth
from tests.helpers import account, assert_ledger_consistent, purchase_body, return_body

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

LARGEST = "999999999.00"
INT32_MAX = 2**31 - 1


def buy(api, member, receipt, amount=LARGEST):
    response = api.post(
        "/api/v1/purchases", purchase_body(member.member_number, receipt, amount), format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_two_purchases_of_the_largest_total_book_and_the_member_earns_again(api, make_member):
    member = make_member()
    first = buy(api, member, "R-BIG-1")
    second = buy(api, member, "R-BIG-2")  # answered 500: pending overflowed 32 bits
    assert first["points_earned"] == 999_999_999
    # The first made the member gold (x1.5): the second earns half again.
    assert second["points_earned"] == 1_499_999_998
    pending = first["points_earned"] + second["points_earned"]
    assert pending > INT32_MAX
    points = second["member"]["points"]
    assert (points["balance"], points["pending"], points["expiring"]["points"]) == (
        0,
        pending,
        pending,
    )
    assert second["member"]["tier"]["code"] == "gold"

    third = buy(api, member, "R-BIG-3", "100.00")  # the member can earn again
    assert third["member"]["points"]["pending"] == pending + 150
    assert sum(QualifyingMonth.objects.filter(member=member).values_list("points", flat=True)) == (
        999_999_999 * 2 + 100
    )
    assert account(member) == (0, pending + 150)

    back = api.post("/api/v1/returns", return_body("R-BIG-2", "RET-BIG-2", LARGEST), format="json")
    assert back.status_code == 201, back.content
    assert back.json()["points_reversed"] == 1_499_999_998
    assert account(member) == (0, first["points_earned"] + 150)
    assert_ledger_consistent()


def test_a_purchase_worth_more_than_32_bits_of_points_ages_and_is_erased(make_api, make_member):
    # The highest earn rate a market can hold: one purchase alone overflowed a lot.
    Market.objects.filter(code="SE").update(earn_rate="9999.9999")
    api = make_api()
    member = make_member()
    body = buy(api, member, "R-HUGE-1")
    points = body["points_earned"]
    assert points == 9_999_999_890_000  # floor(999,999,999 x 9,999.9999)
    assert Lot.objects.get(member=member).points == points

    later = timezone.now() + timedelta(days=31)
    assert lifecycle.points_mature(as_of=later).rows >= 1
    assert account(member) == (points, 0)
    spend = api.post(
        "/api/v1/redemptions",
        {
            "member": {"member_number": member.member_number},
            "points": 10_000_000,
            "store_code": "SE-001",
            "capture": True,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )
    assert spend.status_code == 201, spend.content
    assert spend.json()["member"]["points"]["balance"] == points - 10_000_000

    expired = lifecycle.points_expire(as_of=later + timedelta(days=3 * 365))
    assert expired.rows >= 1  # the demo club's members age too
    assert account(member) == (0, 0)
    assert LedgerEntry.objects.get(member=member, kind="expire").points == -(points - 10_000_000)
    assert_ledger_consistent()


def test_an_erasure_closes_a_balance_beyond_32_bits(make_api, make_member):
    Market.objects.filter(code="SE").update(earn_rate="100", return_window_days=0)
    api = make_api()
    member = make_member()
    points = buy(api, member, "R-HUGE-2")["points_earned"]
    assert points == 99_999_999_900 and account(member) == (points, 0)
    erased = api.post(
        f"/api/v1/members/{member.member_number}/erase", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex
    )
    assert erased.status_code == 200, erased.content
    assert LedgerEntry.objects.get(member=member, kind="adjust").points == -points
    assert PointsAccount.objects.get(member=member).balance == 0
    assert_ledger_consistent()
