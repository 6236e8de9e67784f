"""GET /api/v1/members/{n}/benefits and POST /api/v1/members/{n}/benefits/{code}/use."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from club.models import Market
from core.models import IdempotencyRecord, OutboxEvent
from members.models import Member
from rewards.models import Benefit, BenefitUsage, BenefitUse, MemberList
from tests.helpers import assert_problem, benefits_url, set_tier, use, use_url

pytestmark = pytest.mark.django_db

STOCKHOLM = ZoneInfo("Europe/Stockholm")
BENEFIT_FIELDS = {"code", "name", "kind", "remaining", "period", "resets_on"}


def next_monday_in_stockholm() -> str:
    today = datetime.now(STOCKHOLM).date()
    return (today + timedelta(days=7 - today.weekday())).isoformat()


@pytest.fixture
def member(make_member):
    return make_member(market="SE")


@pytest.fixture
def pos(make_api):
    """A store POS: uses benefits and reads members."""
    return make_api(scopes=["benefits:use", "members:read"])


def uses(member, code=None) -> int:
    qs = BenefitUse.objects.filter(member=member)
    return qs.filter(benefit__code=code).count() if code else qs.count()


def events(member) -> list[OutboxEvent]:
    return list(
        OutboxEvent.objects.filter(topic="benefit.used", member_id=member.pk).order_by("id")
    )


# GET .../benefits -------------------------------------------------------------------------


def test_a_new_member_holds_the_weekly_coffee_in_their_language(pos, member):
    response = pos.get(benefits_url(member))
    assert response.status_code == 200, response.content
    assert response.json() == [
        {
            "code": "coffee",
            "name": "Gratis kaffe",
            "kind": "free_item",
            "remaining": 1,
            "period": "week",
            "resets_on": next_monday_in_stockholm(),
            "channel": "store",
            "description": "A free coffee a week in our stores.",
        }
    ]


def test_a_silver_member_holds_coffee_shipping_and_early_access(pos, silver):
    body = pos.get(benefits_url(silver)).json()
    assert [b["code"] for b in body] == ["coffee", "free-shipping", "early-access"]
    shipping = body[1]
    assert shipping == {
        **shipping,
        "kind": "free_shipping",
        "remaining": None,
        "period": "unlimited",
        "resets_on": None,
        "name": "Fri frakt",
    }


def test_a_gold_member_holds_all_five_with_their_allowances(pos, gold):
    body = pos.get(benefits_url(gold)).json()
    assert [b["code"] for b in body] == [
        "coffee",
        "free-shipping",
        "early-access",
        "extended-returns",
        "member-evening",
    ]
    for benefit in body:
        assert set(benefit) >= BENEFIT_FIELDS
    by_code = {b["code"]: b for b in body}
    evening = by_code["member-evening"]
    next_year = datetime.now(STOCKHOLM).year + 1
    assert (evening["kind"], evening["remaining"], evening["period"], evening["resets_on"]) == (
        "event",
        2,
        "year",
        date(next_year, 1, 1).isoformat(),
    )
    assert by_code["extended-returns"]["description"] == "90-day returns."
    assert by_code["extended-returns"]["remaining"] is None


def test_names_fall_back_to_the_default_name_without_one_in_the_members_language(pos, make_member):
    finn = make_member(market="FI")  # language fi: the demo names only sv and en
    english = make_member(market="SE", language="en")
    assert pos.get(benefits_url(finn)).json()[0]["name"] == "Free coffee"
    assert pos.get(benefits_url(english)).json()[0]["name"] == "Free coffee"


def test_benefits_of_an_unknown_member_answer_not_found(pos):
    assert_problem(pos.get("/api/v1/members/1000000017/benefits"), 404, "not_found")


def test_benefits_of_a_member_of_another_market_answer_not_found(make_api, member):
    norway = make_api(scopes=["members:read"], markets=["NO"])
    assert_problem(norway.get(benefits_url(member)), 404, "not_found")


def test_reading_benefits_needs_members_read(make_api, member):
    user = make_api(scopes=["benefits:use"])
    assert_problem(user.get(benefits_url(member)), 403, "permission_denied")


def test_an_inactive_benefit_is_not_held(pos, member):
    Benefit.objects.filter(code="coffee").update(active=False)
    assert pos.get(benefits_url(member)).json() == []


def test_a_benefit_of_another_market_is_not_held(pos, member, make_member):
    Benefit.objects.get(code="coffee").markets.set([Market.objects.get(code="NO")])
    assert pos.get(benefits_url(member)).json() == []
    norwegian = make_member(market="NO")
    assert [b["code"] for b in pos.get(benefits_url(norwegian)).json()] == ["coffee"]


# POST .../benefits/{code}/use -------------------------------------------------------------


def test_using_the_coffee_answers_201_and_spends_the_weeks_allowance(pos, member):
    response = use(pos, member, "coffee", store="SE-001")
    assert response.status_code == 201, response.content
    body = response.json()
    used_at = datetime.fromisoformat(body.pop("used_at"))
    assert abs(used_at - datetime.now(STOCKHOLM)) < timedelta(minutes=1)
    assert body == {
        "code": "coffee",
        "name": "Gratis kaffe",
        "kind": "free_item",
        "remaining": 0,
        "period": "week",
        "resets_on": next_monday_in_stockholm(),
        "store_code": "SE-001",
        "member_number": member.member_number,
    }
    row = BenefitUse.objects.get(member=member)
    assert (row.benefit.code, row.store.code, row.channel) == ("coffee", "SE-001", "store")
    assert row.api_client_id == pos.api_client.pk
    assert BenefitUsage.objects.get(member=member).count == 1
    assert pos.get(benefits_url(member)).json()[0]["remaining"] == 0


def test_a_second_coffee_in_the_same_week_is_not_available(pos, member):
    assert use(pos, member, "coffee").status_code == 201
    body = assert_problem(use(pos, member, "coffee", store="SE-002"), 422, "benefit_not_available")
    assert next_monday_in_stockholm() in body["detail"]
    assert uses(member) == 1
    assert BenefitUsage.objects.get(member=member).count == 1
    assert len(events(member)) == 1


def test_the_same_key_replays_the_first_answer_and_uses_nothing_more(pos, member):
    first = use(pos, member, "coffee", key="pos-42")
    again = use(pos, member, "coffee", key="pos-42")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert uses(member) == 1
    assert len(events(member)) == 1


def test_the_same_key_with_another_body_answers_idempotency_key_reused(pos, member):
    assert use(pos, member, "coffee", key="k2").status_code == 201
    assert_problem(
        use(pos, member, "coffee", key="k2", store="SE-002"), 422, "idempotency_key_reused"
    )
    assert uses(member) == 1


def test_a_refusal_is_replayed_for_the_same_key(pos, member):
    first = use(pos, member, "free-shipping", store="SE-WEB", key="ship-1")
    assert_problem(first, 422, "benefit_not_available")
    set_tier(member, "silver")  # now it would be available, but the key has its answer
    again = use(pos, member, "free-shipping", store="SE-WEB", key="ship-1")
    assert_problem(again, 422, "benefit_not_available")
    assert again["Idempotent-Replayed"] == "true"
    assert uses(member) == 0


def test_a_use_without_an_idempotency_key_answers_400_and_uses_nothing(pos, member):
    response = pos.post(use_url(member, "coffee"), {"store_code": "SE-001"}, format="json")
    assert_problem(response, 400, "idempotency_key_required")
    assert uses(member) == 0 and BenefitUsage.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


def test_an_unknown_benefit_answers_not_found(pos, member):
    assert_problem(use(pos, member, "free-lunch"), 404, "not_found")


def test_an_unknown_member_answers_not_found(pos):
    response = pos.post(
        "/api/v1/members/1000000017/benefits/coffee/use",
        {"store_code": "SE-001"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="x",
    )
    assert_problem(response, 404, "not_found")


def test_a_member_of_another_market_answers_not_found(make_api, member):
    norway = make_api(scopes=["benefits:use"], markets=["NO"])
    assert_problem(use(norway, member, "coffee"), 404, "not_found")
    assert uses(member) == 0


def test_a_benefit_of_a_higher_tier_is_not_available(pos, member, silver):
    body = assert_problem(
        use(pos, member, "free-shipping", store="SE-WEB"), 422, "benefit_not_available"
    )
    assert "Medlem" in body["detail"]
    assert_problem(use(pos, silver, "member-evening"), 422, "benefit_not_available")
    assert uses(member) == uses(silver) == 0


def test_the_coffee_is_not_available_in_the_web_shop(pos, member):
    body = assert_problem(use(pos, member, "coffee", store="SE-WEB"), 422, "benefit_not_available")
    assert "in store only" in body["detail"]
    assert uses(member) == 0
    assert use(pos, member, "coffee", store="SE-001").status_code == 201


def test_free_shipping_is_not_available_in_a_store(pos, silver):
    assert_problem(use(pos, silver, "free-shipping", store="SE-001"), 422, "benefit_not_available")
    assert use(pos, silver, "free-shipping", store="SE-WEB").status_code == 201


def test_early_access_is_used_in_store_and_online(pos, silver):
    assert use(pos, silver, "early-access", store="SE-001").status_code == 201
    assert use(pos, silver, "early-access", store="SE-WEB").status_code == 201
    assert sorted(BenefitUse.objects.filter(member=silver).values_list("channel", flat=True)) == [
        "online",
        "store",
    ]


def test_an_unlimited_benefit_never_runs_out(pos, silver):
    for _ in range(3):
        response = use(pos, silver, "free-shipping", store="SE-WEB")
        assert response.status_code == 201, response.content
        body = response.json()
        assert (body["remaining"], body["period"], body["resets_on"]) == (None, "unlimited", None)
    assert uses(silver, "free-shipping") == 3


def test_a_store_of_another_market_answers_unknown_store(pos, member):
    assert_problem(use(pos, member, "coffee", store="NO-001"), 422, "unknown_store")
    assert_problem(use(pos, member, "coffee", store="XX-999"), 422, "unknown_store")
    assert uses(member) == 0


def test_an_inactive_member_cannot_use_benefits(pos, member):
    Member.objects.filter(pk=member.pk).update(status=Member.Status.SUSPENDED)
    assert_problem(use(pos, member, "coffee"), 422, "member_inactive")
    assert uses(member) == 0


def test_an_inactive_benefit_is_not_available(pos, member):
    Benefit.objects.filter(code="coffee").update(active=False)
    assert_problem(use(pos, member, "coffee"), 422, "benefit_not_available")


def test_a_benefit_for_a_member_list_needs_the_member_on_the_list(pos, member, make_member):
    press = MemberList.objects.create(name="Press")
    coffee = Benefit.objects.get(code="coffee")
    coffee.member_lists.set([press])
    assert pos.get(benefits_url(member)).json() == []
    assert_problem(use(pos, member, "coffee"), 422, "benefit_not_available")
    press.members.add(member)
    assert [b["code"] for b in pos.get(benefits_url(member)).json()] == ["coffee"]
    assert use(pos, member, "coffee").status_code == 201
    # On the list but not in the tier: still not theirs.
    coffee.tiers.set(coffee.tiers.exclude(code="member"))
    other = make_member(market="SE")
    press.members.add(other)
    assert_problem(use(pos, other, "coffee"), 422, "benefit_not_available")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"store_code": "SE-001", "points": 5},
        {"store_code": ""},
        {"store_code": None},
        ["SE-001"],
    ],
)
def test_a_bad_body_answers_validation_error_and_uses_nothing(pos, member, body):
    response = pos.post(use_url(member, "coffee"), body, format="json", HTTP_IDEMPOTENCY_KEY="b")
    assert_problem(response, 400, "validation_error")
    assert uses(member) == 0


def test_using_a_benefit_needs_benefits_use(make_api, member):
    reader = make_api(scopes=["members:read"])
    assert_problem(use(reader, member, "coffee"), 403, "permission_denied")
    assert uses(member) == 0


# The outbox ----------------------------------------------------------------------------------


def test_each_use_writes_one_benefit_used_event(pos, silver):
    first = use(pos, silver, "free-shipping", store="SE-WEB", key="a").json()
    use(pos, silver, "free-shipping", store="SE-WEB", key="a")  # a replay
    use(pos, silver, "coffee", store="SE-001", key="b")
    use(pos, silver, "coffee", store="SE-002", key="c")  # refused: spent
    found = events(silver)
    assert len(found) == 2
    rows = list(BenefitUse.objects.filter(member=silver).order_by("id"))
    assert [e.dedupe_key for e in found] == [f"benefit.used:{r.pk}" for r in rows]
    payload = found[0].payload
    assert payload["member_number"] == silver.member_number
    assert (payload["benefit"], payload["store_code"], payload["channel"]) == (
        "free-shipping",
        "SE-WEB",
        "online",
    )
    assert payload["use_id"] == rows[0].pk
    assert payload["used_at"] == first["used_at"]
    assert found[1].payload["benefit"] == "coffee" and found[1].payload["remaining"] == 0
