"""POST /api/v1/purchases, per API.md "Purchases and returns" and "Idempotency"."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from loyalty.models import LedgerEntry, Lot, Purchase
from tests.helpers import (
    account,
    assert_ledger_consistent,
    assert_problem,
    purchase_body,
    set_window,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/purchases"


def post(api, body, **headers):
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return api.post(URL, body, format="json", **extra)


def test_purchase_books_pending_points_and_answers_the_contract(api, make_member):
    member = make_member()
    occurred = timezone.now() - timedelta(minutes=2)
    response = post(api, purchase_body(member.member_number, "R-1", "499.00", occurred_at=occurred))
    assert response.status_code == 201, response.content
    assert "Idempotent-Replayed" not in response
    body = response.json()
    assert body["receipt_id"] == "R-1"
    assert body["points_earned"] == 499
    assert body["points_status"] == "pending"
    earned_on = occurred.astimezone(ZoneInfo("Europe/Stockholm")).date()
    assert body["available_on"] == (earned_on + timedelta(days=30)).isoformat()
    assert body["tier_changed"] is False
    assert body["member"]["member_number"] == member.member_number
    assert body["member"]["tier"]["code"] == "member"
    assert body["member"]["points"]["balance"] == 0
    assert body["member"]["points"]["pending"] == 499
    assert account(member) == (0, 499)
    purchase = Purchase.objects.get(pk=body["purchase_id"])
    assert purchase.points_earned == 499
    entry = LedgerEntry.objects.get(purchase=purchase)
    assert (entry.kind, entry.points) == ("earn", 499)
    lot = Lot.objects.get(purchase=purchase)
    assert lot.matured is False and lot.remaining == 499
    # 24 months after the month earned, end of that month.
    expected_expiry_month = date(earned_on.year + 2, earned_on.month, 1)
    assert lot.expires_on.year == expected_expiry_month.year
    assert lot.expires_on.month == expected_expiry_month.month
    assert (lot.expires_on + timedelta(days=1)).day == 1
    assert_ledger_consistent()


def test_purchase_by_card_finds_the_member(api, make_member):
    member = make_member()
    card = member.cards.first().number
    body = purchase_body(member.member_number, "R-card", "100.00")
    body["member"] = {"card": card}
    response = post(api, body)
    assert response.status_code == 201, response.content
    assert response.json()["member"]["member_number"] == member.member_number
    assert account(member) == (0, 100)


def test_purchase_in_a_market_with_window_zero_is_available_at_once(api, make_member):
    set_window("SE", 0)
    member = make_member()
    response = post(api, purchase_body(member.member_number, "R-0", "250.50"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["points_earned"] == 250
    assert body["points_status"] == "available"
    assert body["member"]["points"]["balance"] == 250
    assert body["member"]["points"]["pending"] == 0
    assert account(member) == (250, 0)
    assert Lot.objects.get(member=member).matured is True
    assert_ledger_consistent()


def test_giftcards_earn_nothing(api, make_member):
    member = make_member()
    body = purchase_body(member.member_number, "R-gift", "600.00")
    body["lines"] = [
        {"sku": "DRILL", "category": "tools", "quantity": 1, "amount": "100.00"},
        {"sku": "GIFT-500", "category": "giftcards", "quantity": 1, "amount": "500.00"},
    ]
    response = post(api, body)
    assert response.status_code == 201, response.content
    assert response.json()["points_earned"] == 100
    assert account(member) == (0, 100)

    only_gift = purchase_body(member.member_number, "R-gift-only", "500.00", category="giftcards")
    response = post(api, only_gift)
    assert response.status_code == 201, response.content
    assert response.json()["points_earned"] == 0
    assert account(member) == (0, 100)
    assert_ledger_consistent()


def test_points_are_rounded_down(api, make_member):
    member = make_member()
    response = post(api, purchase_body(member.member_number, "R-round", "99.99"))
    assert response.status_code == 201
    assert response.json()["points_earned"] == 99


def test_same_receipt_same_body_replays_without_booking_twice(api, make_member):
    member = make_member()
    body = purchase_body(member.member_number, "R-dup", "300.00")
    first = post(api, body)
    assert first.status_code == 201
    second = post(api, body)
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert account(member) == (0, 300)
    assert LedgerEntry.objects.filter(member=member, kind="earn").count() == 1
    assert Purchase.objects.filter(member=member).count() == 1


def test_same_receipt_other_body_is_a_receipt_conflict(api, make_member):
    member = make_member()
    post(api, purchase_body(member.member_number, "R-conf", "300.00"))
    response = post(api, purchase_body(member.member_number, "R-conf", "301.00"))
    assert_problem(response, 409, "receipt_conflict")
    assert account(member) == (0, 300)
    assert LedgerEntry.objects.filter(member=member).count() == 1


def test_same_receipt_id_in_another_store_is_another_purchase(api, make_member):
    member = make_member()
    assert post(api, purchase_body(member.member_number, "R-x", "10.00")).status_code == 201
    response = post(api, purchase_body(member.member_number, "R-x", "10.00", store="SE-002"))
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert account(member) == (0, 20)


def test_idempotency_key_replays_status_body_and_header(api, make_member):
    member = make_member()
    body = purchase_body(member.member_number, "R-key", "120.00")
    first = post(api, body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    again = post(api, body, **{"Idempotency-Key": "k-1"})
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert account(member) == (0, 120)


def test_idempotency_key_with_another_body_is_refused(api, make_member):
    member = make_member()
    post(api, purchase_body(member.member_number, "R-k2", "120.00"), **{"Idempotency-Key": "k-2"})
    response = post(
        api, purchase_body(member.member_number, "R-k3", "130.00"), **{"Idempotency-Key": "k-2"}
    )
    assert_problem(response, 422, "idempotency_key_reused")
    assert account(member) == (0, 120)
    assert not Purchase.objects.filter(receipt_id="R-k3").exists()


def test_idempotency_key_longer_than_255_is_a_validation_error(api, make_member):
    member = make_member()
    response = post(
        api, purchase_body(member.member_number, "R-long", "1.00"), **{"Idempotency-Key": "x" * 256}
    )
    assert_problem(response, 400, "validation_error")
    assert account(member) == (0, 0)


def test_a_refusal_under_a_key_is_replayed_too(api, make_member):
    member = make_member()
    body = purchase_body(member.member_number, "R-cur", "10.00", currency="NOK")
    first = post(api, body, **{"Idempotency-Key": "k-refused"})
    assert_problem(first, 422, "currency_mismatch")
    again = post(api, body, **{"Idempotency-Key": "k-refused"})
    assert_problem(again, 422, "currency_mismatch")
    assert again["Idempotent-Replayed"] == "true"


# -- refusals ---------------------------------------------------------------


def _lines(*amounts: str) -> list[dict]:
    return [
        {"sku": f"S{i}", "category": "tools", "quantity": 1, "amount": a}
        for i, a in enumerate(amounts)
    ]


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda b: b.pop("receipt_id"), "receipt_id"),
        (lambda b: b.pop("member"), "member"),
        (lambda b: b.pop("occurred_at"), "occurred_at"),
        (lambda b: b.pop("total"), "total"),
        (lambda b: b.pop("lines"), "lines"),
        (lambda b: b.update(lines=[]), "lines"),
        (lambda b: b.update(total="-1.00", lines=_lines("-1.00")), "total"),
        (lambda b: b.update(total="10000000000.00", lines=_lines("10000000000.00")), "total"),
        (lambda b: b.update(total="1e400", lines=_lines("1e400")), "total"),
        (lambda b: b.update(total="abc"), "total"),
        (lambda b: b.update(total="1.001", lines=_lines("1.001")), "total"),
        (lambda b: b.update(occurred_at="2026-01-10T12:00:00"), "occurred_at"),
        (lambda b: b.update(occurred_at="yesterday"), "occurred_at"),
        (lambda b: b.update(balance=1000), "balance"),
        (lambda b: b["lines"][0].update(discount="5"), "lines.0.discount"),
        (lambda b: b["lines"][0].update(quantity=0), "lines.0.quantity"),
        (lambda b: b.update(member={"card": "1", "member_number": "2"}), "member"),
        (lambda b: b.update(member={"email": "x@example.se"}), "member.email"),
        (lambda b: b.update(currency="sek"), "currency"),
        (lambda b: b.update(channel="telepathy"), "channel"),
    ],
)
def test_invalid_bodies_are_validation_errors_and_change_nothing(api, make_member, mutate, field):
    member = make_member()
    body = purchase_body(member.member_number, "R-bad", "100.00")
    mutate(body)
    response = post(api, body)
    problem = assert_problem(response, 400, "validation_error")
    assert any(key == field or key.startswith(field + ".") for key in problem["errors"]), problem
    assert account(member) == (0, 0)
    assert not Purchase.objects.exists()


def test_total_must_equal_the_sum_of_the_lines(api, make_member):
    member = make_member()
    body = purchase_body(member.member_number, "R-sum", "100.00")
    body["lines"] = _lines("60.00", "39.99")
    problem = assert_problem(post(api, body), 400, "validation_error")
    assert "total" in problem["errors"]
    assert account(member) == (0, 0)
    assert not Purchase.objects.exists()


def test_malformed_json_is_a_validation_error(api):
    response = api.post(URL, data=b"{not json", content_type="application/json")
    assert_problem(response, 400, "validation_error")


@pytest.mark.parametrize("occurred", [timedelta(hours=1), -timedelta(days=91)])
def test_occurred_at_in_the_future_or_too_old_is_refused(api, make_member, occurred):
    member = make_member()
    body = purchase_body(
        member.member_number, "R-time", "10.00", occurred_at=timezone.now() + occurred
    )
    problem = assert_problem(post(api, body), 400, "validation_error")
    assert "occurred_at" in problem["errors"]
    assert account(member) == (0, 0)


def test_unknown_member_is_not_found(api, demo):
    response = post(api, purchase_body("1234567897", "R-nobody", "10.00"))
    assert_problem(response, 404, "not_found")
    assert not Purchase.objects.exists()


def test_member_of_another_market_is_not_found_for_a_market_bound_key(make_api, make_member):
    member = make_member(market="SE")
    norway = make_api(markets=["NO"])
    response = post(
        norway, purchase_body(member.member_number, "R-no", "10.00", store="NO-001", currency="NOK")
    )
    body = assert_problem(response, 404, "not_found")
    # Exactly like a member that does not exist.
    unknown = assert_problem(
        post(norway, purchase_body("1234567897", "R-no2", "10.00")), 404, "not_found"
    )
    assert body["detail"] == unknown["detail"]
    assert account(member) == (0, 0)


def test_currency_of_another_market_is_refused(api, make_member):
    member = make_member()
    response = post(api, purchase_body(member.member_number, "R-eur", "10.00", currency="EUR"))
    assert_problem(response, 422, "currency_mismatch")
    assert account(member) == (0, 0)


@pytest.mark.parametrize("store", ["NO-001", "XX-999"])
def test_store_outside_the_members_market_is_unknown(api, make_member, store):
    member = make_member()
    response = post(api, purchase_body(member.member_number, "R-store", "10.00", store=store))
    assert_problem(response, 422, "unknown_store")
    assert account(member) == (0, 0)


@pytest.mark.parametrize("status", ["suspended", "closed"])
def test_inactive_member_earns_nothing(api, make_member, status):
    member = make_member()
    type(member).objects.filter(pk=member.pk).update(status=status)
    response = post(api, purchase_body(member.member_number, "R-susp", "10.00"))
    assert_problem(response, 422, "member_inactive")
    assert account(member) == (0, 0)
    assert not Purchase.objects.exists()


def test_purchase_needs_the_purchases_scope(make_api, make_member):
    member = make_member()
    reader = make_api(scopes=["members:read"])
    response = post(reader, purchase_body(member.member_number, "R-scope", "10.00"))
    assert_problem(response, 403, "permission_denied")
    assert account(member) == (0, 0)


def test_purchase_without_a_key_is_not_authenticated(client, make_member):
    member = make_member()
    response = client.post(
        URL, purchase_body(member.member_number, "R-anon", "10.00"), content_type="application/json"
    )
    assert_problem(response, 401, "not_authenticated")
    assert account(member) == (0, 0)
