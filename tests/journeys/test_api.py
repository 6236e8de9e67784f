"""POST /api/v1/events and GET /api/v1/members/{member_number}/missions:
the contract, replays counted once, and the errors of API.md."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from club.dates import local_date
from journeys.models import ActivityEvent, MemberMission, Mission
from loyalty.models import PointsAccount
from members.models import Member
from tests.helpers import (
    assert_ledger_consistent,
    assert_problem,
    bonus_entries,
    enrol_at,
    mission_row,
    purchase_body,
)

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events"


def missions_url(member) -> str:
    return f"/api/v1/members/{member.member_number}/missions"


def event(member, type_: str = "profile_completed", **extra):
    body = {
        "member": {"member_number": member.member_number},
        "type": type_,
        "occurred_at": (timezone.now() - timedelta(minutes=2)).isoformat(),
        "properties": {},
    }
    body.update(extra)
    return body


def test_an_event_completes_its_mission_and_pays(journey_on, api, make_member):
    member = make_member()
    response = api.post(
        EVENTS, event(member, event_id="crm-1", properties={"fields": 7}), format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == "profile_completed" and body["event_id"] == "crm-1"
    assert body["member_number"] == member.member_number
    assert body["properties"] == {"fields": 7}
    assert body["missions_completed"] == ["complete-profile"]
    assert "Idempotent-Replayed" not in response
    row = mission_row(member, "complete-profile")
    assert row.status == "completed" and row.reward_entry.points == 100
    assert PointsAccount.objects.get(member_id=member.pk).balance == 100
    assert_ledger_consistent()


def test_a_replayed_event_is_counted_once(journey_on, api, make_member):
    member = make_member()
    body = event(member, "survey_answered", event_id="survey-42")
    first = api.post(EVENTS, body, format="json")
    again = api.post(EVENTS, body, format="json")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert ActivityEvent.objects.filter(member=member).count() == 1
    assert len(bonus_entries(member, "mission:welcome-survey")) == 1
    assert PointsAccount.objects.get(member_id=member.pk).balance == 100


def test_the_same_event_without_an_id_is_counted_once(journey_on, api, make_member):
    member = make_member()
    body = event(member, "newsletter_opened")
    assert api.post(EVENTS, body, format="json").status_code == 201
    assert api.post(EVENTS, body, format="json")["Idempotent-Replayed"] == "true"
    other = dict(body, occurred_at=(timezone.now() - timedelta(minutes=1)).isoformat())
    assert api.post(EVENTS, other, format="json").status_code == 201
    assert ActivityEvent.objects.filter(member=member, type="newsletter_opened").count() == 2


def test_an_event_id_again_with_another_body_is_refused(journey_on, api, make_member):
    member = make_member()
    assert api.post(EVENTS, event(member, event_id="e-1"), format="json").status_code == 201
    changed = event(member, event_id="e-1", properties={"other": True})
    assert_problem(api.post(EVENTS, changed, format="json"), 422, "idempotency_key_reused")
    assert ActivityEvent.objects.filter(member=member).count() == 1


def test_an_event_outside_the_missions_window_is_recorded_and_counts_nothing(
    journey_on, api, make_member
):
    member = enrol_at(make_member(), timezone.now() - timedelta(days=20))  # profile: days 0-14
    response = api.post(EVENTS, event(member), format="json")
    assert response.status_code == 201 and response.json()["missions_completed"] == []
    assert ActivityEvent.objects.filter(member=member).count() == 1
    assert mission_row(member, "complete-profile") is None


@pytest.mark.parametrize(
    "change, field",
    [
        ({"type": None}, "type"),
        ({"type": "Profile Completed"}, "type"),
        ({"occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),
        ({"occurred_at": "tomorrow"}, "occurred_at"),
        ({"properties": ["a"]}, "properties"),
        ({"member": {"card": "1", "member_number": "2"}}, "member.non_field_errors"),
        ({"points": 100}, "points"),
    ],
)
def test_invalid_events_answer_400(journey_on, api, make_member, change, field):
    member = make_member()
    body = event(member)
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    problem = assert_problem(api.post(EVENTS, body, format="json"), 400, "validation_error")
    assert field in problem["errors"], problem
    assert not ActivityEvent.objects.exists()


def test_an_event_in_the_future_answers_400(journey_on, api, make_member):
    member = make_member()
    body = event(member, occurred_at=(timezone.now() + timedelta(hours=1)).isoformat())
    problem = assert_problem(api.post(EVENTS, body, format="json"), 400, "validation_error")
    assert "occurred_at" in problem["errors"]


def test_an_event_for_an_unknown_or_unseen_member_answers_404(journey_on, make_api, make_member):
    member = make_member(market="NO")
    se_only = make_api(scopes=["members:write"], markets=["SE"])
    assert_problem(se_only.post(EVENTS, event(member), format="json"), 404, "not_found")
    ghost = {
        "member": {"member_number": "1234567890"},
        "type": "x",
        "occurred_at": timezone.now().isoformat(),
    }
    assert_problem(se_only.post(EVENTS, ghost, format="json"), 404, "not_found")
    assert not ActivityEvent.objects.exists()


def test_an_event_for_an_inactive_member_answers_422(journey_on, api, make_member):
    member = make_member()
    Member.objects.filter(pk=member.pk).update(status="suspended")
    assert_problem(api.post(EVENTS, event(member), format="json"), 422, "member_inactive")


def test_events_need_members_write(journey_on, make_api, make_member):
    member = make_member()
    reader = make_api(scopes=["members:read"])
    assert_problem(reader.post(EVENTS, event(member), format="json"), 403, "permission_denied")
    assert not ActivityEvent.objects.exists()


def test_events_need_a_key(journey_on, client, make_member):
    member = make_member()
    response = client.post(EVENTS, event(member), content_type="application/json")
    assert_problem(response, 401, "not_authenticated")


# --- GET missions -----------------------------------------------------------


def test_the_members_missions(journey_on, api, make_member):
    member = make_member()
    assert (
        api.post(
            "/api/v1/purchases",
            purchase_body(member.member_number, "R-m-1", "120.00"),
            format="json",
        ).status_code
        == 201
    )
    response = api.get(missions_url(member))
    assert response.status_code == 200
    missions = {m["code"]: m for m in response.json()}
    assert list(missions) == [
        "complete-profile",
        "first-purchase",
        "second-purchase",
        "store-and-online",
        "welcome-survey",
    ]
    today = local_date(member.market, timezone.now())
    assert missions["first-purchase"]["status"] == "completed"
    assert missions["first-purchase"]["completed_at"] is not None
    assert missions["first-purchase"]["reward"] == {"points": 200}
    assert missions["second-purchase"]["progress"] == {"current": 1, "target": 2}
    assert missions["second-purchase"]["starts_on"] == today.isoformat()
    assert missions["second-purchase"]["deadline"] == (today + timedelta(days=60)).isoformat()
    assert missions["store-and-online"]["reward"] == {"reward": "coffee-voucher"}
    assert missions["complete-profile"] == {
        "code": "complete-profile",
        "name": "Fyll i din profil",
        "description": "Tell us a little about yourself within two weeks.",
        "goal": "profile_completed",
        "status": "in_progress",
        "progress": {"current": 0, "target": 1},
        "starts_on": today.isoformat(),
        "deadline": (today + timedelta(days=14)).isoformat(),
        "reward": {"points": 100},
        "completed_at": None,
    }


def test_missions_whose_window_has_passed_show_as_missed(journey_on, api, make_member):
    member = enrol_at(make_member(), timezone.now() - timedelta(days=45))
    # Missions that did not exist while the member's window was open are not theirs.
    assert [m["code"] for m in api.get(missions_url(member)).json()] == [
        "second-purchase",
        "store-and-online",
    ]
    Mission.objects.update(created_at=timezone.now() - timedelta(days=100))
    statuses = {m["code"]: m["status"] for m in api.get(missions_url(member)).json()}
    assert statuses == {
        "complete-profile": "missed",
        "first-purchase": "missed",
        "second-purchase": "in_progress",
        "store-and-online": "in_progress",
        "welcome-survey": "missed",
    }
    assert not MemberMission.objects.filter(member=member).exists()  # reading writes nothing


def test_missions_of_an_unknown_or_unseen_member_answer_404(journey_on, make_api, make_member):
    member = make_member(market="NO")
    se_only = make_api(scopes=["members:read"], markets=["SE"])
    assert_problem(se_only.get(missions_url(member)), 404, "not_found")
    assert_problem(se_only.get("/api/v1/members/0000000000/missions"), 404, "not_found")


def test_missions_need_members_read(journey_on, make_api, make_member):
    member = make_member()
    writer = make_api(scopes=["members:write"])
    assert_problem(writer.get(missions_url(member)), 403, "permission_denied")
