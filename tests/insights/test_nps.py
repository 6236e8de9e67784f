"""POST /api/v1/surveys/nps and GET /api/v1/insights/nps: the answer, the
survey mission, and the report computed by hand (counts, each member's
latest answer, the adjusted Wald interval's ends)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from club.dates import local_date
from club.models import Market
from core.models import OutboxEvent
from insights.models import NpsResponse
from insights.selectors import nps_figures
from loyalty.models import PointsAccount
from tests.helpers import assert_problem, bonus_entries, set_tier

pytestmark = pytest.mark.django_db

SURVEY = "/api/v1/surveys/nps"
REPORT = "/api/v1/insights/nps"


def answer(
    member, score: int, *, touchpoint: str = "store", ago: timedelta = timedelta(hours=1), **extra
):
    body = {
        "member": {"member_number": member.member_number},
        "score": score,
        "touchpoint": touchpoint,
        "occurred_at": (timezone.now() - ago).isoformat(),
    }
    body.update(extra)
    return body


def test_an_answer_is_stored_and_counts_for_the_survey_mission(journey_on, api, make_member):
    member = make_member()
    response = api.post(
        SURVEY, answer(member, 9, store_code="SE-001", comment="Great staff"), format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["score"] == 9 and body["category"] == "promoter"
    assert body["touchpoint"] == "store" and body["store_code"] == "SE-001"
    assert body["member"]["member_number"] == member.member_number
    # The welcome survey's 100 points, in the same answer.
    assert body["member"]["points"]["balance"] == 100
    stored = NpsResponse.objects.get(pk=body["response_id"])
    assert (stored.member_id, stored.score, stored.comment) == (member.pk, 9, "Great staff")
    assert stored.store.code == "SE-001" and stored.market.code == "SE"
    assert len(bonus_entries(member, "mission:welcome-survey")) == 1
    event = OutboxEvent.objects.get(topic="nps.answered", member_id=member.pk)
    assert event.payload == {
        "member_number": member.member_number,
        "score": 9,
        "touchpoint": "store",
    }
    # A second answer is stored, and the mission pays once.
    again = api.post(SURVEY, answer(member, 4, touchpoint="app"), format="json")
    assert again.json()["category"] == "detractor"
    assert NpsResponse.objects.filter(member=member).count() == 2
    assert PointsAccount.objects.get(member_id=member.pk).balance == 100


def test_an_idempotency_key_replays_the_answer(api, make_member):
    member = make_member()
    key = uuid.uuid4().hex
    body = answer(member, 7)
    first = api.post(SURVEY, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    again = api.post(SURVEY, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert first.json()["category"] == "passive"
    assert NpsResponse.objects.filter(member=member).count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"score": 11}, "score"),
        ({"score": -1}, "score"),
        ({"touchpoint": "fax"}, "touchpoint"),
        ({"comment": "x" * 2001}, "comment"),
        ({"occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),
        ({"points": 5}, "points"),
    ],
)
def test_bad_answers_are_refused_and_nothing_is_stored(api, make_member, change, field):
    member = make_member()
    response = api.post(SURVEY, {**answer(member, 8), **change}, format="json")
    body = assert_problem(response, 400, "validation_error")
    assert field in body["errors"]
    assert not NpsResponse.objects.filter(member=member).exists()


def test_a_store_of_another_market_and_a_hidden_member_are_refused(make_api, make_member):
    member = make_member()
    api = make_api()
    assert_problem(
        api.post(SURVEY, answer(member, 8, store_code="NO-001"), format="json"),
        422,
        "unknown_store",
    )
    norway = make_api(markets=["NO"])
    assert_problem(norway.post(SURVEY, answer(member, 8), format="json"), 404, "not_found")
    reader = make_api(scopes=["members:read"])
    assert_problem(reader.post(SURVEY, answer(member, 8), format="json"), 403, "permission_denied")
    assert not NpsResponse.objects.filter(member=member).exists()


def test_the_report_by_hand(api, make_member):
    """Six members count, each with their latest answer in the period:
    promoters 3 (A's latest 10, B 9, F 10), passives 1 (C 7), detractors 2
    (D 2, E 6); G answered before the period and counts nowhere.
    NPS = 100 x (3 - 2) / 6 = 16.7. Adjusted: n = 9, p = 3.75/9 = 0.41667,
    d = 2.75/9 = 0.30556, nps' = 0.11111, half-width = 1.96 x sqrt((0.72222
    - 0.012346) / 9) = 0.55046: the interval is (-43.9, 66.2)."""
    se = Market.objects.get(code="SE")
    a, b, c, d, e, f, g = (make_member() for _ in range(7))
    set_tier(b, "gold")
    set_tier(f, "gold")
    posts = [
        (a, 3, "store", "SE-001", timedelta(days=5)),
        (a, 10, "online", None, timedelta(days=1)),  # A's latest
        (b, 9, "store", "SE-001", timedelta(days=2)),
        (c, 7, "store", "SE-002", timedelta(days=2)),
        (d, 2, "support", None, timedelta(days=3)),
        (e, 6, "store", "SE-001", timedelta(days=3)),
        (f, 10, "app", None, timedelta(days=4)),
        (g, 0, "store", "SE-001", timedelta(days=40)),  # before the period
    ]
    for member, score, touchpoint, store, ago in posts:
        extra = {"store_code": store} if store else {}
        response = api.post(
            SURVEY, answer(member, score, touchpoint=touchpoint, ago=ago, **extra), format="json"
        )
        assert response.status_code == 201, response.content
    today = local_date(se, timezone.now())
    period = {
        "market": "SE",
        "from": (today - timedelta(days=10)).isoformat(),
        "to": today.isoformat(),
    }
    body = api.get(REPORT, period).json()
    assert body["market"] == "SE" and body["from"] == period["from"] and body["to"] == period["to"]
    assert (body["responses"], body["promoters"], body["passives"], body["detractors"]) == (
        6,
        3,
        1,
        2,
    )
    assert body["nps"] == 16.7
    assert body["ci95"] == [-43.9, 66.2]
    assert "groups" not in body

    by_touchpoint = {
        g["key"]: g for g in api.get(REPORT, {**period, "group_by": "touchpoint"}).json()["groups"]
    }
    # A counts once, with the online answer; the store's figures by hand:
    # B 9, C 7, E 6 -> 1 promoter, 1 passive, 1 detractor, NPS 0.
    assert set(by_touchpoint) == {"store", "online", "support", "app"}
    store = by_touchpoint["store"]
    assert (store["responses"], store["promoters"], store["passives"], store["detractors"]) == (
        3,
        1,
        1,
        1,
    )
    assert store["nps"] == 0.0
    # n = 6, p = d = 1.75/6 = 0.29167, half-width = 1.96 x sqrt(0.58333/6) = 0.61113
    assert store["ci95"] == [-61.1, 61.1]
    assert by_touchpoint["online"]["promoters"] == 1 and by_touchpoint["online"]["nps"] == 100.0

    by_store = {
        g["key"]: g["responses"]
        for g in api.get(REPORT, {**period, "group_by": "store"}).json()["groups"]
    }
    assert by_store == {"SE-001": 2, "SE-002": 1, None: 3}
    by_tier = {
        g["key"]: (g["responses"], g["nps"])
        for g in api.get(REPORT, {**period, "group_by": "tier"}).json()["groups"]
    }
    # Gold: B 9 and F 10, NPS 100; the rest (A 10, C 7, D 2, E 6): 100 x (1 - 2) / 4 = -25.
    assert by_tier == {"gold": (2, 100.0), "member": (4, -25.0)}


def test_by_month_each_member_counts_once_a_month(api, make_member):
    se = Market.objects.get(code="SE")
    member, other = make_member(), make_member()
    now = timezone.now()
    early, late = now - timedelta(days=45), now - timedelta(hours=2)
    for who, score, at in [(member, 2, early), (member, 10, late), (other, 9, late)]:
        body = answer(who, score, occurred_at=at.isoformat())
        assert api.post(SURVEY, body, format="json").status_code == 201
    frm, to = local_date(se, early), local_date(se, now)
    body = api.get(REPORT, {"market": "SE", "from": frm, "to": to, "group_by": "month"}).json()
    assert body["responses"] == 2 and body["promoters"] == 2  # the period: latest answers only
    months = {g["key"]: (g["responses"], g["detractors"]) for g in body["groups"]}
    first, last = local_date(se, early).strftime("%Y-%m"), local_date(se, late).strftime("%Y-%m")
    # 45 days back is always another month.
    assert months == {first: (1, 1), last: (2, 0)}


def test_no_answers_no_figures(api):
    body = api.get(REPORT, {"market": "FI", "from": "2020-01-01", "to": "2020-01-31"}).json()
    assert body["responses"] == 0 and body["nps"] is None and body["ci95"] is None


def test_the_figures_of_a_single_promoter():
    # n = 4, p = 1.75/4 = 0.4375, d = 0.1875, nps' = 0.25,
    # half-width = 1.96 x sqrt((0.625 - 0.0625) / 4) = 0.735
    assert nps_figures(1, 0, 0) == {
        "responses": 1,
        "promoters": 1,
        "passives": 0,
        "detractors": 0,
        "nps": 100.0,
        "ci95": [-48.5, 98.5],
    }


def test_the_market_rules(make_api):
    period = {"from": "2026-01-01", "to": "2026-01-31"}
    everywhere = make_api(scopes=["insights:read"])
    body = assert_problem(everywhere.get(REPORT, period), 400, "validation_error")
    assert "market" in body["errors"]
    assert_problem(everywhere.get(REPORT, {**period, "market": "XX"}), 404, "not_found")
    norway = make_api(scopes=["insights:read"], markets=["NO"])
    assert norway.get(REPORT, period).json()["market"] == "NO"
    assert_problem(norway.get(REPORT, {**period, "market": "SE"}), 404, "not_found")
    writer = make_api(scopes=["members:write"])
    assert_problem(writer.get(REPORT, {**period, "market": "SE"}), 403, "permission_denied")


@pytest.mark.parametrize(
    "query",
    [
        {"market": "SE", "from": "2026-02-01", "to": "2026-01-01"},
        {"market": "SE", "from": "2026-13-01", "to": "2026-01-01"},
        {"market": "SE", "to": "2026-01-01"},
        {"market": "SE", "from": "2026-01-01", "to": "2026-01-02", "group_by": "colour"},
        {"market": "SE", "from": "2026-01-01", "to": "2026-01-02", "size": "1"},
    ],
)
def test_bad_queries_answer_400(api, query):
    assert_problem(api.get(REPORT, query), 400, "validation_error")
