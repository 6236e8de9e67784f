"""POST /api/v1/returns: proportional reversal, pending first, debts paid back first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from loyalty import services
from loyalty.models import LedgerEntry, Lot, LotMovement, Purchase, Return
from tests.helpers import (
    SYSTEM,
    account,
    assert_ledger_consistent,
    assert_problem,
    purchase_body,
    return_body,
    set_window,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/returns"


def buy(api, member, receipt, amount, **kwargs):
    response = api.post(
        "/api/v1/purchases",
        purchase_body(member.member_number, receipt, amount, **kwargs),
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def ret(api, body, **headers):
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return api.post(URL, body, format="json", **extra)


def test_full_return_reverses_all_pending_points(api, make_member):
    member = make_member()
    bought = buy(api, member, "R-1", "499.00")
    response = ret(api, return_body("R-1", "RET-1", "499.00"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["points_reversed"] == 499
    assert body["purchase_id"] == bought["purchase_id"]
    assert body["receipt_id"] == "RET-1"
    assert body["member"]["member_number"] == member.member_number
    assert body["member"]["points"] == {"balance": 0, "pending": 0, "expiring": None}
    assert account(member) == (0, 0)
    entry = LedgerEntry.objects.get(member=member, kind="return")
    assert entry.points == -499
    assert_ledger_consistent()


def test_partial_returns_are_proportional_and_sum_to_exactly_the_earned_points(api, make_member):
    member = make_member()
    bought = buy(api, member, "R-p", "333.33")
    assert bought["points_earned"] == 333
    reversed_ = []
    for n, amount in enumerate(["100.00", "100.00", "100.00", "33.33"]):
        response = ret(api, return_body("R-p", f"RET-p{n}", amount))
        assert response.status_code == 201, response.content
        reversed_.append(response.json()["points_reversed"])
        assert_ledger_consistent()
    # floor(333 * cumulative / 333.33), each return the difference.
    assert reversed_ == [99, 100, 100, 34]
    assert sum(reversed_) == 333
    assert account(member) == (0, 0)
    purchase = Purchase.objects.get(receipt_id="R-p")
    assert purchase.points_reversed == 333
    assert purchase.returned_amount == purchase.total


def test_return_of_a_giftcard_line_reverses_nothing(api, make_member):
    member = make_member()
    body = purchase_body(member.member_number, "R-g", "300.00")
    body["lines"] = [
        {"sku": "TOOL", "category": "tools", "quantity": 1, "amount": "100.00"},
        {"sku": "GIFT", "category": "giftcards", "quantity": 1, "amount": "200.00"},
    ]
    assert api.post("/api/v1/purchases", body, format="json").json()["points_earned"] == 100
    gift = ret(api, return_body("R-g", "RET-g1", "200.00", sku="GIFT"))
    assert gift.status_code == 201, gift.content
    assert gift.json()["points_reversed"] == 0
    assert account(member) == (0, 100)
    half = ret(api, return_body("R-g", "RET-g2", "50.00", sku="TOOL"))
    assert half.json()["points_reversed"] == 50
    rest = ret(api, return_body("R-g", "RET-g3", "50.00", sku="TOOL"))
    assert rest.json()["points_reversed"] == 50
    assert account(member) == (0, 0)
    assert_ledger_consistent()


def test_returns_can_never_exceed_the_purchase(api, make_member):
    member = make_member()
    buy(api, member, "R-x", "200.00")
    assert ret(api, return_body("R-x", "RET-x1", "150.00")).status_code == 201
    over = ret(api, return_body("R-x", "RET-x2", "50.01"))
    assert_problem(over, 422, "return_exceeds_purchase")
    assert account(member) == (0, 50)
    assert Return.objects.count() == 1
    # A sku the receipt never had.
    other = ret(api, return_body("R-x", "RET-x3", "1.00", sku="NOT-ON-RECEIPT"))
    assert_problem(other, 422, "return_exceeds_purchase")
    assert ret(api, return_body("R-x", "RET-x4", "50.00")).status_code == 201
    assert account(member) == (0, 0)
    assert_problem(ret(api, return_body("R-x", "RET-x5", "0.01")), 422, "return_exceeds_purchase")
    assert_ledger_consistent()


def test_return_after_points_were_spent_leaves_a_debt_the_next_earning_pays_first(api, make_member):
    set_window("SE", 0)
    member = make_member()
    buy(api, member, "R-d", "500.00")
    assert account(member) == (500, 0)
    redeemed = api.post(
        "/api/v1/redemptions",
        {"member": {"member_number": member.member_number}, "points": 400, "store_code": "SE-001"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="debt-r",
    )
    assert redeemed.status_code == 201, redeemed.content
    response = ret(api, return_body("R-d", "RET-d", "500.00"))
    assert response.status_code == 201, response.content
    assert response.json()["points_reversed"] == 500
    # 100 were left of the 500; 400 had been spent and become a debt.
    assert response.json()["member"]["points"]["balance"] == -400
    assert account(member) == (-400, 0)
    assert_ledger_consistent()
    # The next (available) earning pays the debt before anything else.
    again = buy(api, member, "R-d2", "600.00")
    assert again["member"]["points"]["balance"] == 200
    assert account(member) == (200, 0)
    new_lot = Lot.objects.get(purchase_id=again["purchase_id"])
    assert new_lot.remaining == 200
    assert LotMovement.objects.filter(lot=new_lot, kind="debt").get().points == -400
    assert_ledger_consistent()


def test_debt_is_paid_first_when_pending_points_mature(api, make_member):
    member = make_member(points=100)
    buy(api, member, "R-m1", "300.00")  # pending
    # Spend what is available, then the points of a purchase that had matured come back.
    set_window("SE", 0)
    buy(api, member, "R-m2", "200.00")
    assert account(member) == (300, 300)
    services.points_redeem(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        points=300,
        store_code="SE-001",
    )
    ret(api, return_body("R-m2", "RET-m2", "200.00"))
    assert account(member) == (-200, 300)
    assert_ledger_consistent()
    # 31 days on, the pending 300 mature: 200 pay the debt, 100 are spendable.
    later = timezone.now() + timedelta(days=31)
    set_window("SE", 30)
    with pytest.raises(services.InsufficientPoints):
        services.points_redeem(
            actor=SYSTEM,
            member_ref={"member_number": member.member_number},
            points=101,
            store_code="SE-001",
            now=later,
        )
    assert account(member) == (-200, 300)  # the refusal changed nothing
    services.points_redeem(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        points=100,
        store_code="SE-001",
        now=later,
    )
    assert account(member) == (0, 0)
    assert_ledger_consistent()


def test_return_of_matured_points_takes_them_from_the_balance(api, make_member):
    member = make_member(points=50)
    set_window("SE", 0)
    buy(api, member, "R-b", "100.00")
    assert account(member) == (150, 0)
    response = ret(api, return_body("R-b", "RET-b", "40.00"))
    assert response.json()["points_reversed"] == 40
    assert account(member) == (110, 0)
    # Taken from the purchase's own lot, not the older adjustment lot.
    assert Lot.objects.get(purchase__receipt_id="R-b").remaining == 60
    assert_ledger_consistent()


def test_same_return_receipt_replays_and_another_body_conflicts(api, make_member):
    member = make_member()
    buy(api, member, "R-r", "100.00")
    body = return_body("R-r", "RET-r", "30.00")
    first = ret(api, body)
    assert first.status_code == 201
    second = ret(api, body)
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert account(member) == (0, 70)
    conflict = ret(api, return_body("R-r", "RET-r", "31.00"))
    assert_problem(conflict, 409, "receipt_conflict")
    assert account(member) == (0, 70)
    assert Return.objects.count() == 1


def test_return_under_idempotency_key_replays(api, make_member):
    member = make_member()
    buy(api, member, "R-k", "100.00")
    body = return_body("R-k", "RET-k", "10.00")
    first = ret(api, body, **{"Idempotency-Key": "ret-1"})
    assert first.status_code == 201
    again = ret(api, body, **{"Idempotency-Key": "ret-1"})
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    reused = ret(api, return_body("R-k", "RET-k2", "10.00"), **{"Idempotency-Key": "ret-1"})
    assert_problem(reused, 422, "idempotency_key_reused")
    assert account(member) == (0, 90)


def test_return_of_an_unknown_purchase_is_not_found(api, demo):
    assert_problem(ret(api, return_body("NOPE", "RET-n", "10.00")), 404, "not_found")


def test_return_of_a_purchase_of_another_market_is_not_found(api, make_api, make_member):
    member = make_member()
    buy(api, member, "R-m", "100.00")
    norway = make_api(markets=["NO"])
    response = ret(norway, return_body("R-m", "RET-m", "10.00", store="NO-001", currency="NOK"))
    assert_problem(response, 404, "not_found")
    assert account(member) == (0, 100)


def test_return_currency_and_store_are_checked(api, make_member):
    member = make_member()
    buy(api, member, "R-c", "100.00")
    assert_problem(
        ret(api, return_body("R-c", "RET-c", "10.00", currency="NOK")), 422, "currency_mismatch"
    )
    assert_problem(
        ret(api, return_body("R-c", "RET-c", "10.00", store="DK-001")), 422, "unknown_store"
    )
    assert account(member) == (0, 100)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("original"),
        lambda b: b["original"].pop("receipt_id"),
        lambda b: b.update(total="20.00"),  # != sum of lines
        lambda b: b.update(total="-10.00", lines=[{"sku": "SKU-1", "amount": "-10.00"}]),
        lambda b: b.update(occurred_at="2026-01-01T10:00:00"),
        lambda b: b.update(points_reversed=10),
        lambda b: b["original"].update(member_number="1"),
    ],
)
def test_invalid_return_bodies_are_validation_errors(api, make_member, mutate):
    member = make_member()
    buy(api, member, "R-v", "100.00")
    body = return_body("R-v", "RET-v", "10.00")
    mutate(body)
    assert_problem(ret(api, body), 400, "validation_error")
    assert account(member) == (0, 100)
    assert not Return.objects.exists()


def test_full_return_of_a_sku_sold_in_two_categories_reverses_all_points(api, make_member):
    member = make_member()
    body = purchase_body(member.member_number, "R-two", "200.00")
    body["lines"] = [
        {"sku": "BUNDLE", "category": "giftcards", "quantity": 1, "amount": "100.00"},
        {"sku": "BUNDLE", "category": "tools", "quantity": 1, "amount": "100.00"},
    ]
    assert api.post("/api/v1/purchases", body, format="json").json()["points_earned"] == 100
    response = ret(api, return_body("R-two", "RET-two", "200.00", sku="BUNDLE"))
    assert response.status_code == 201, response.content
    assert response.json()["points_reversed"] == 100
    assert account(member) == (0, 0)
    assert_ledger_consistent()
