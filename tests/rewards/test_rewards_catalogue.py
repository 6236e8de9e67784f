"""GET /api/v1/rewards: the catalogue, its prices, and what a member can claim now;
the demo club's rewards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backoffice.demo import demo_club_seed
from club.models import Market
from members.models import Member
from rewards.models import Reward, RewardPrice
from tests.helpers import SEK_50, assert_problem, claim, make_reward, set_tier

pytestmark = pytest.mark.django_db

URL = "/api/v1/rewards"


def by_code(response) -> dict:
    assert response.status_code == 200, response.content
    return {item["code"]: item for item in response.json()}


def test_the_demo_club_has_its_rewards(demo):
    rewards = {r.code: r for r in Reward.objects.prefetch_related("tiers", "prices__market")}
    assert set(rewards) == {"voucher-50", "coffee-voucher", "tote-bag", "gold-lounge"}
    voucher = rewards["voucher-50"]
    assert (
        voucher.points_cost,
        voucher.value_amount,
        voucher.value_currency,
        voucher.validity_days,
    ) == (500, 50, "SEK", 60)
    assert {p.market.code: (p.points_cost, str(p.value_amount)) for p in voucher.prices.all()} == {
        "NO": (500, "50.00"),
        "DK": (500, "35.00"),
        "FI": (500, "5.00"),
    }
    coffee = rewards["coffee-voucher"]
    assert (coffee.points_cost, coffee.value_amount, coffee.validity_days) == (150, None, 30)
    assert "coffee" in coffee.value_text
    assert (rewards["tote-bag"].points_cost, rewards["tote-bag"].stock) == (800, 100)
    assert rewards["gold-lounge"].points_cost == 1000
    assert [t.code for t in rewards["gold-lounge"].tiers.all()] == ["gold"]
    for reward in rewards.values():
        reward.full_clean()  # the demo passes the admin's own validation


def test_seeding_again_leaves_staff_edits_of_rewards(demo):
    Reward.objects.filter(code="tote-bag").update(stock=7)
    assert demo_club_seed().created == 0
    assert Reward.objects.count() == 4
    assert Reward.objects.get(code="tote-bag").stock == 7
    assert RewardPrice.objects.count() == 3


def test_a_member_sees_what_they_can_claim_now(api, make_member):
    member = make_member(points=600)
    rewards = by_code(api.get(URL, {"member_number": member.member_number}))
    assert list(rewards) == ["voucher-50", "coffee-voucher", "tote-bag", "gold-lounge"]
    assert rewards["voucher-50"]["claimable"] is True
    assert rewards["voucher-50"]["reason"] is None
    assert rewards["voucher-50"]["points_cost"] == 500
    assert rewards["voucher-50"]["value"] == SEK_50
    assert rewards["coffee-voucher"]["claimable"] is True
    assert rewards["coffee-voucher"]["value"] is None
    assert rewards["tote-bag"]["claimable"] is False
    assert rewards["tote-bag"]["reason"] == "insufficient_points"
    assert rewards["tote-bag"]["reason_detail"] == "Balance 600 is below 800."
    assert rewards["gold-lounge"]["reason"] == "tier"
    assert rewards["gold-lounge"]["tiers"] == ["gold"]
    assert rewards["voucher-50"]["name"] == "Presentkort 50 kr"  # the member's language (sv)


def test_claimable_follows_the_member(api, make_member):
    member = set_tier(make_member(points=1000), "gold")
    Reward.objects.filter(code="tote-bag").update(stock=0)
    rewards = by_code(api.get(URL, {"member_number": member.member_number}))
    assert rewards["gold-lounge"]["claimable"] is True
    assert rewards["tote-bag"]["reason"] == "out_of_stock"
    Member.objects.filter(pk=member.pk).update(status=Member.Status.SUSPENDED)
    rewards = by_code(api.get(URL, {"member_number": member.member_number}))
    assert {r["reason"] for r in rewards.values()} == {"member_inactive"}


def test_what_the_catalogue_calls_claimable_can_be_claimed(api, make_member):
    Reward.objects.filter(code="tote-bag").update(points_cost=801)
    seen = set()
    for code in ("voucher-50", "coffee-voucher", "tote-bag", "gold-lounge"):
        member = make_member(points=800)  # one each, so that no claim pays for another
        item = by_code(api.get(URL, {"member_number": member.member_number}))[code]
        seen.add(item["claimable"])
        response = claim(api, member, code)
        assert response.status_code == (201 if item["claimable"] else 422), (code, response.content)
    assert seen == {True, False}


def test_rewards_not_on_offer_are_not_listed(api, make_member):
    Reward.objects.filter(code="coffee-voucher").update(active=False)
    Reward.objects.filter(code="tote-bag").update(active_until=timezone.now() - timedelta(hours=1))
    Reward.objects.filter(code="gold-lounge").update(
        active_from=timezone.now() + timedelta(hours=1)
    )
    member = make_member(points=100)
    assert list(by_code(api.get(URL, {"member_number": member.member_number}))) == ["voucher-50"]
    assert list(by_code(api.get(URL))) == ["voucher-50"]


def test_a_member_sees_their_market_price_and_currency(api, make_member):
    finn = make_member(market="FI", points=100)
    voucher = by_code(api.get(URL, {"member_number": finn.member_number}))["voucher-50"]
    assert voucher["value"] == {"amount": "5.00", "currency": "EUR"}
    assert voucher["prices"] == [
        {"market": "FI", "points_cost": 500, "value": {"amount": "5.00", "currency": "EUR"}}
    ]
    assert voucher["reason"] == "insufficient_points"


def test_rewards_of_other_markets_are_not_in_a_members_catalogue(api, make_member):
    reward = make_reward("norway-only")
    reward.markets.set([Market.objects.get(code="NO")])
    swede = make_member()
    assert "norway-only" not in by_code(api.get(URL, {"member_number": swede.member_number}))
    norwegian = make_member(market="NO")
    assert "norway-only" in by_code(api.get(URL, {"member_number": norwegian.member_number}))


def test_without_a_member_the_catalogue_of_the_clients_markets(make_api, demo):
    reward = make_reward("norway-only")
    reward.markets.set([Market.objects.get(code="NO")])
    swedish = by_code(make_api(markets=["SE"]).get(URL))
    assert "norway-only" not in swedish
    assert swedish["voucher-50"]["points_cost"] == 500
    assert swedish["voucher-50"]["prices"] == [
        {"market": "SE", "points_cost": 500, "value": SEK_50}
    ]
    assert "claimable" not in swedish["voucher-50"]
    everywhere = by_code(make_api().get(URL))
    assert "norway-only" in everywhere
    assert [p["market"] for p in everywhere["voucher-50"]["prices"]] == ["DK", "FI", "NO", "SE"]
    assert [p["market"] for p in everywhere["norway-only"]["prices"]] == ["NO"]
    danish = by_code(make_api().get(URL, {"market": "DK"}))
    assert danish["voucher-50"]["value"] == {"amount": "35.00", "currency": "DKK"}


def test_a_market_the_client_does_not_see_is_not_found(make_api, demo):
    assert_problem(make_api(markets=["SE"]).get(URL, {"market": "NO"}), 404, "not_found")
    assert_problem(make_api().get(URL, {"market": "XX"}), 404, "not_found")


def test_a_member_of_another_market_is_not_found(make_api, make_member):
    norwegian = make_member(market="NO")
    swedish_pos = make_api(markets=["SE"])
    assert_problem(
        swedish_pos.get(URL, {"member_number": norwegian.member_number}), 404, "not_found"
    )
    assert_problem(swedish_pos.get(URL, {"member_number": "0000000000"}), 404, "not_found")


def test_the_catalogue_needs_members_read(make_api, demo):
    assert_problem(make_api(scopes=["rewards:write"]).get(URL), 403, "permission_denied")
    assert make_api(scopes=["members:read"]).get(URL).status_code == 200
