"""POST /api/v1/members/{member_number}/rewards: spending points on a
reward, per API.md "Tiers, benefits, rewards, missions"."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from core.actors import SYSTEM
from core.models import OutboxEvent
from loyalty.models import LedgerEntry, LotMovement
from members.models import Member
from rewards.codes import code_normalize
from rewards.models import Reward, Voucher
from tests.helpers import (
    SEK_50,
    assert_ledger_consistent,
    assert_problem,
    balance,
    claim,
    claim_url,
    make_reward,
    purchase_body,
    set_tier,
)

pytestmark = pytest.mark.django_db

CODE_SHAPE = re.compile(r"^[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{5}$")


def test_a_claim_at_exactly_the_balance_succeeds_and_leaves_zero(api, make_member):
    member = make_member(points=500)
    response = claim(api, member, "voucher-50")
    assert response.status_code == 201, response.content
    body = response.json()
    # API.md: the voucher's fields at the top level, and `member`: exactly
    # the voucher as GET /vouchers/{code} shows it, plus the member after.
    voucher = {key: value for key, value in body.items() if key != "member"}
    read = api.get(f"/api/v1/vouchers/{body['code']}")
    assert read.status_code == 200, read.content
    assert read.json() == voucher
    assert {"code", "reward", "status", "expires_at", "member"} <= set(body)
    assert voucher["member_number"] == member.member_number
    assert voucher["reward"] == "voucher-50"
    assert voucher["status"] == "issued"
    assert voucher["value"] == SEK_50
    assert voucher["points_cost"] == 500
    assert CODE_SHAPE.match(voucher["code"]), voucher["code"]
    assert body["member"]["member_number"] == member.member_number
    assert body["member"]["points"]["balance"] == 0
    assert balance(member) == 0
    row = Voucher.objects.get(member=member)
    assert row.code == code_normalize(voucher["code"])
    # 60 days of validity from now.
    issued = timezone.datetime.fromisoformat(voucher["issued_at"])
    assert timezone.datetime.fromisoformat(voucher["expires_at"]) - issued == timedelta(days=60)
    entry = row.ledger_entry
    assert (entry.kind, entry.points, entry.reference) == ("redeem", -500, "reward:voucher-50")
    assert sum(LotMovement.objects.filter(entry=entry).values_list("points", flat=True)) == -500
    assert OutboxEvent.objects.filter(topic="voucher.issued", member_id=member.pk).count() == 1
    assert_ledger_consistent()


def test_one_point_short_is_insufficient_and_changes_nothing(api, make_member):
    member = make_member(points=499)
    entries = LedgerEntry.objects.count()
    body = assert_problem(claim(api, member, "voucher-50"), 422, "insufficient_points")
    assert body["detail"] == "Balance 499 is below 500."
    assert balance(member) == 499
    assert LedgerEntry.objects.count() == entries
    assert not Voucher.objects.filter(member=member).exists()
    assert not OutboxEvent.objects.filter(topic="voucher.issued").exists()
    assert_ledger_consistent()


def test_pending_points_do_not_pay_for_a_reward(api, make_member):
    member = make_member(points=100)
    # 499 points earned, pending for the 30-day return window.
    assert (
        api.post(
            "/api/v1/purchases", purchase_body(member.member_number, "R-P1"), format="json"
        ).status_code
        == 201
    )
    assert_problem(claim(api, member, "coffee-voucher"), 422, "insufficient_points")
    assert balance(member) == 100


def test_points_are_taken_from_the_lots_that_expire_first(api, make_member, system_client):
    from loyalty.models import Lot

    member = make_member(points=100)
    first = Lot.objects.get(member=member)
    Lot.objects.filter(pk=first.pk).update(expires_on=first.expires_on - timedelta(days=400))
    from loyalty.services import points_adjust

    points_adjust(actor=SYSTEM, member=member, points=200, reason="second lot")
    assert claim(api, member, "coffee-voucher").status_code == 201
    remaining = dict(Lot.objects.filter(member=member).values_list("points", "remaining"))
    assert remaining == {100: 0, 200: 150}
    assert_ledger_consistent()


def test_a_claim_replays_under_its_idempotency_key(api, make_member):
    member = make_member(points=1000)
    first = claim(api, member, "voucher-50", key="claim-1")
    again = claim(api, member, "voucher-50", key="claim-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Voucher.objects.filter(member=member).count() == 1
    assert balance(member) == 500
    other = claim(api, member, "coffee-voucher", key="claim-1")
    assert_problem(other, 422, "idempotency_key_reused")
    assert balance(member) == 500


def test_a_refused_claim_replays_its_refusal(api, make_member):
    member = make_member(points=100)
    assert_problem(claim(api, member, "voucher-50", key="short-1"), 422, "insufficient_points")
    from loyalty.services import points_adjust

    points_adjust(actor=SYSTEM, member=member, points=1000, reason="more")
    again = claim(api, member, "voucher-50", key="short-1")
    assert_problem(again, 422, "insufficient_points")
    assert again["Idempotent-Replayed"] == "true"
    assert not Voucher.objects.filter(member=member).exists()


def test_a_claim_needs_an_idempotency_key(api, make_member):
    member = make_member(points=1000)
    response = api.post(claim_url(member), {"reward": "voucher-50"}, format="json")
    assert_problem(response, 400, "idempotency_key_required")
    assert balance(member) == 1000


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reward": ""},
        {"reward": "voucher-50", "points": 1},
        {"reward": ["voucher-50"]},
        {"reward": "x" * 65},
    ],
)
def test_bad_claim_bodies_are_validation_errors(api, make_member, body):
    member = make_member(points=1000)
    response = api.post(claim_url(member), body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert_problem(response, 400, "validation_error")
    assert balance(member) == 1000


def test_an_unknown_reward_is_not_found(api, make_member):
    member = make_member(points=1000)
    assert_problem(claim(api, member, "no-such-reward"), 404, "not_found")
    assert balance(member) == 1000


def test_a_tier_restricted_reward_is_refused_below_the_tier(api, make_member):
    member = set_tier(make_member(points=5000), "silver")
    body = assert_problem(claim(api, member, "gold-lounge"), 422, "reward_not_available")
    assert "Silver" in body["detail"]
    assert balance(member) == 5000
    set_tier(member, "gold")
    response = claim(api, member, "gold-lounge")
    assert response.status_code == 201, response.content
    assert balance(member) == 4000


def test_an_inactive_member_cannot_claim(api, make_member):
    member = make_member(points=1000)
    Member.objects.filter(pk=member.pk).update(status=Member.Status.SUSPENDED)
    assert_problem(claim(api, member, "coffee-voucher"), 422, "member_inactive")
    assert balance(member) == 1000


@pytest.mark.parametrize(
    "change",
    [
        {"active": False},
        {"active_from": timezone.now() + timedelta(days=1)},
        {"active_until": timezone.now() - timedelta(seconds=1)},
    ],
)
def test_a_reward_not_on_offer_now_is_refused(api, make_member, change):
    member = make_member(points=1000)
    Reward.objects.filter(code="coffee-voucher").update(**change)
    assert_problem(claim(api, member, "coffee-voucher"), 422, "reward_not_available")
    assert balance(member) == 1000


def test_a_reward_of_other_markets_is_refused(api, make_member):
    from club.models import Market

    reward = make_reward("norway-only", points_cost=10)
    reward.markets.set([Market.objects.get(code="NO")])
    member = make_member(points=100)  # SE
    assert_problem(claim(api, member, "norway-only"), 422, "reward_not_available")
    norwegian = make_member(market="NO", points=100)
    assert claim(api, norwegian, "norway-only").status_code == 201


def test_a_money_voucher_is_worth_the_market_price_in_its_currency(api, make_member):
    norwegian = make_member(market="NO", points=500)
    response = claim(api, norwegian, "voucher-50")
    assert response.status_code == 201, response.content
    assert response.json()["value"] == {"amount": "50.00", "currency": "NOK"}
    danish = make_member(market="DK", points=500)
    assert claim(api, danish, "voucher-50").json()["value"] == {
        "amount": "35.00",
        "currency": "DKK",
    }


def test_a_market_price_overrides_the_points_cost(api, make_member):
    from club.models import Market
    from rewards.models import RewardPrice

    reward = Reward.objects.get(code="coffee-voucher")
    RewardPrice.objects.create(reward=reward, market=Market.objects.get(code="FI"), points_cost=20)
    finn = make_member(market="FI", points=20)
    response = claim(api, finn, "coffee-voucher")
    assert response.status_code == 201, response.content
    assert response.json()["points_cost"] == 20
    assert response.json()["member"]["points"]["balance"] == 0
    assert balance(finn) == 0
    swede = make_member(points=20)
    assert_problem(claim(api, swede, "coffee-voucher"), 422, "insufficient_points")


def test_a_money_voucher_without_a_value_in_the_market_currency_is_refused(api, make_member):
    make_reward(
        "sek-only", points_cost=10, value_text="", value_amount="10.00", value_currency="SEK"
    )
    finn = make_member(market="FI", points=100)
    body = assert_problem(claim(api, finn, "sek-only"), 422, "reward_not_available")
    assert "EUR" in body["detail"]
    assert balance(finn) == 100


def test_stock_runs_out(api, make_member):
    make_reward("last-two", points_cost=10, stock=2)
    member = make_member(points=100)
    assert claim(api, member, "last-two").status_code == 201
    assert claim(api, member, "last-two").status_code == 201
    assert Reward.objects.get(code="last-two").stock == 0
    body = assert_problem(claim(api, member, "last-two"), 422, "reward_not_available")
    assert "out of stock" in body["detail"]
    assert balance(member) == 80
    assert Voucher.objects.filter(member=member).count() == 2


def test_unlimited_stock_stays_unlimited(api, make_member):
    member = make_member(points=300)
    assert claim(api, member, "coffee-voucher").status_code == 201
    assert claim(api, member, "coffee-voucher").status_code == 201
    assert Reward.objects.get(code="coffee-voucher").stock is None


def test_a_member_of_another_market_is_not_found(make_api, make_member):
    norwegian = make_member(market="NO", points=1000)
    swedish_pos = make_api(markets=["SE"])
    assert_problem(claim(swedish_pos, norwegian, "voucher-50"), 404, "not_found")
    assert balance(norwegian) == 1000


def test_claiming_needs_the_rewards_write_scope(make_api, make_member):
    member = make_member(points=1000)
    reader = make_api(scopes=["members:read"])
    assert_problem(claim(reader, member, "voucher-50"), 403, "permission_denied")
    assert balance(member) == 1000


def test_the_ledger_shows_the_claim(api, make_member):
    member = make_member(points=800)
    assert claim(api, member, "coffee-voucher").status_code == 201
    ledger = api.get(f"/api/v1/members/{member.member_number}/ledger").json()["results"]
    assert ledger[0]["kind"] == "redeem"
    assert ledger[0]["points"] == -150
    assert ledger[0]["reference"] == "reward:coffee-voucher"


def test_many_claims_keep_the_ledger_consistent(api, make_member):
    members = [make_member(points=points) for points in (150, 1000, 2650, 799)]
    for member in members:
        for reward in ("coffee-voucher", "voucher-50", "tote-bag", "voucher-50"):
            claim(api, member, reward)
    # 150: coffee. 1000: coffee, voucher. 2650: all four. 799: coffee, voucher.
    assert [balance(m) for m in members] == [0, 350, 700, 149]
    assert Voucher.objects.filter(member__in=members).count() == 1 + 2 + 4 + 2
    assert Reward.objects.get(code="tote-bag").stock == 99
    assert_ledger_consistent()
