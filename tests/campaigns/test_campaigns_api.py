"""POST/GET/PATCH/DELETE /api/v1/campaigns as API.md "Campaigns" writes them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Campaign
from tests.campaigns.helpers import campaign_body, make_campaign
from tests.helpers import assert_problem, buy, purchase_body

pytestmark = pytest.mark.django_db

URL = "/api/v1/campaigns"


def test_create_answers_the_campaign_with_status_and_spent_points(api):
    body = campaign_body(
        tiers=["silver", "gold"],
        segments=["at_risk"],
        stores=["SE-001"],
        categories=["tools"],
        min_amount="500.00",
        budget_points=100000,
        per_member_limit=1,
        stackable=True,
        channel="any",
    )
    response = api.post(URL, body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["code"] == "DOUBLE-TOOLS" and created["market"] == "SE"
    assert created["reward"] == {"kind": "multiplier", "factor": "2"}
    assert created["status"] == "active" and created["spent_points"] == 0
    assert created["tiers"] == ["gold", "silver"] and created["min_amount"] == "500.00"
    assert (created["budget_points"], created["per_member_limit"]) == (100000, 1)
    assert created["stackable"] is True and created["paused"] is False


def test_everything_from_channel_on_is_optional(api):
    response = api.post(URL, campaign_body(reward={"kind": "points", "points": 100}), format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["channel"] == "any" and created["tiers"] == [] and created["skus"] == []
    assert created["reward"] == {"kind": "points", "points": 100}
    assert created["budget_points"] is None and created["stackable"] is False


def test_a_code_once_per_market(api):
    assert api.post(URL, campaign_body(), format="json").status_code == 201
    assert_problem(api.post(URL, campaign_body(), format="json"), 409, "already_exists")
    assert api.post(URL, campaign_body(market="NO"), format="json").status_code == 201


@pytest.mark.parametrize(
    "change",
    [
        {"stores": ["NO-001"]},
        {"tiers": ["platinum"]},
        {"reward": {"kind": "multiplier", "points": 5}},
        {"reward": {"kind": "multiplier", "factor": "1"}},
        {"reward": {"kind": "points", "points": 0}},
        {"reward": {"kind": "cashback", "points": 5}},
        {"channel": "phone"},
        {"ends_at": (timezone.now() - timedelta(days=2)).isoformat()},
        {"starts_at": "2026-11-01T10:00:00"},
        {"budget_points": 0},
        {"per_member_limit": -1},
        {"min_amount": "-1.00"},
        {"market": "XX"},
        {"spent_points": 10},
        {"status": "active"},
        {"segments": ["Not A Segment!"]},
        {"code": "has space"},
    ],
)
def test_bad_input_is_refused_and_nothing_is_created(api, change):
    assert_problem(api.post(URL, campaign_body(**change), format="json"), 400, "validation_error")
    assert not Campaign.objects.exists()


def test_scopes(make_api):
    reader = make_api(scopes=["members:read"])
    assert_problem(reader.post(URL, campaign_body(), format="json"), 403, "permission_denied")
    make_campaign("SEEN")
    assert reader.get(URL).status_code == 200
    assert reader.get(f"{URL}/SEEN").status_code == 200
    assert_problem(
        reader.patch(f"{URL}/SEEN", {"paused": True}, format="json"), 403, "permission_denied"
    )
    writer = make_api(scopes=["campaigns:write"])
    assert_problem(writer.get(URL), 403, "permission_denied")
    assert writer.patch(f"{URL}/SEEN", {"paused": True}, format="json").status_code == 200


def test_a_client_sees_only_its_markets_campaigns(make_api):
    make_campaign("SE-ONLY")
    norway = make_api(markets=["NO"])
    assert_problem(norway.get(f"{URL}/SE-ONLY"), 404, "not_found")
    assert norway.get(URL).json() == []
    assert_problem(norway.post(URL, campaign_body(), format="json"), 400, "validation_error")


def test_list_filters_by_market_and_status(api):
    now = timezone.now()
    make_campaign("RUNNING")
    make_campaign("SOON", starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=2))
    make_campaign("OVER", starts_at=now - timedelta(days=3), ends_at=now - timedelta(days=1))
    make_campaign("NORWAY", market_code="NO")
    make_campaign("SPENT", reward=10, budget_points=10)
    make_campaign("HALTED")
    api.patch(f"{URL}/HALTED", {"paused": True}, format="json")
    codes = lambda query: sorted(c["code"] for c in api.get(URL + query).json())  # noqa: E731
    assert codes("?market=NO") == ["NORWAY"]
    assert codes("?status=scheduled") == ["SOON"]
    assert codes("?status=ended") == ["OVER"]
    assert codes("?status=paused") == ["HALTED"]
    assert codes("?market=SE&status=active") == ["RUNNING", "SPENT"]
    assert_problem(api.get(URL + "?status=sleeping"), 400, "validation_error")


def test_a_spent_budget_shows_exhausted(api, make_member):
    make_campaign("SPENT", reward=10, budget_points=15)
    member = make_member()
    buy(member, "10.00")
    buy(member, "10.00")
    shown = api.get(f"{URL}/SPENT").json()
    assert (shown["status"], shown["spent_points"]) == ("exhausted", 15)
    assert [c["code"] for c in api.get(URL + "?status=exhausted").json()] == ["SPENT"]


def test_spent_points_of_a_campaign_without_budget_is_its_bonuses_net(api, make_member):
    make_campaign("OPEN", reward=10)
    member = make_member()
    buy(member, "10.00")
    buy(member, "10.00")
    assert api.get(f"{URL}/OPEN").json()["spent_points"] == 20


def test_patch_changes_name_end_budget_and_pause_only(api, make_member):
    make_campaign("EDIT", reward=10, budget_points=100)
    buy(make_member(), "10.00")
    ends = (timezone.now() + timedelta(days=30)).isoformat()
    response = api.patch(
        f"{URL}/EDIT",
        {"name": "Renamed", "ends_at": ends, "budget_points": 50, "paused": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    shown = response.json()
    assert (shown["name"], shown["budget_points"], shown["status"]) == ("Renamed", 50, "paused")
    for bad in (
        {"budget_points": 5},
        {"budget_points": None},
        {"min_amount": "1.00"},
        {"code": "X"},
    ):
        assert_problem(api.patch(f"{URL}/EDIT", bad, format="json"), 400, "validation_error")
    assert Campaign.objects.get(code="EDIT").budget_points == 50
    assert_problem(api.patch(f"{URL}/NOPE", {"paused": True}, format="json"), 404, "not_found")


def test_a_paused_campaign_stops_rewarding(api, make_member):
    make_campaign("PAUSE-ME")
    member = make_member()
    assert buy(member, "10.00")["bonuses"] != []
    api.patch(f"{URL}/PAUSE-ME", {"paused": True}, format="json")
    assert buy(member, "10.00")["bonuses"] == []
    api.patch(f"{URL}/PAUSE-ME", {"paused": False}, format="json")
    assert buy(member, "10.00")["bonuses"] != []


def test_delete_until_points_are_booked(api, make_member):
    make_campaign("UNUSED")
    assert api.delete(f"{URL}/UNUSED").status_code == 204
    assert not Campaign.objects.filter(code="UNUSED").exists()
    make_campaign("USED")
    buy(make_member(), "10.00")
    assert_problem(api.delete(f"{URL}/USED"), 409, "invalid_state")
    assert Campaign.objects.filter(code="USED").exists()


def test_one_code_in_two_markets_is_told_apart_by_market(api):
    make_campaign("TWICE")
    make_campaign("TWICE", market_code="NO")
    assert_problem(api.get(f"{URL}/TWICE"), 400, "validation_error")
    assert api.get(f"{URL}/TWICE?market=NO").json()["market"] == "NO"


def test_the_purchase_answer_has_bonuses(api, make_member):
    member = make_member()
    plain = api.post("/api/v1/purchases", purchase_body(member.member_number, "R-1"), format="json")
    assert plain.status_code == 201 and plain.json()["bonuses"] == []
    api.post(URL, campaign_body(categories=["tools"]), format="json")
    body = purchase_body(member.member_number, "R-2", "120.00")
    answer = api.post("/api/v1/purchases", body, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["bonuses"] == [{"campaign": "DOUBLE-TOOLS", "points": 120}]
    assert answer.json()["points_earned"] == 240
    replay = api.post("/api/v1/purchases", body, format="json")
    assert replay.json() == answer.json()
