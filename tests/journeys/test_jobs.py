"""missions_close (job, command, task, schedule), the demo journey, and the
staff admin for missions."""

from __future__ import annotations

import io
from datetime import UTC, timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from backoffice.demo import demo_club_seed
from club.dates import local_date
from club.models import Market
from core.jobs import schedules
from journeys.demo import journey_seed
from journeys.models import MemberMission, Mission
from journeys.services import missions_close
from rewards.models import GiftRule, Reward
from tests.helpers import buy, enrol_at, local, mission_row

pytestmark = pytest.mark.django_db


def _started(make_member, days_ago: int):
    """A member enrolled `days_ago` days ago with a store purchase on day 0:
    first-purchase completed, second-purchase (0-60) and store-and-online
    (0-90) in progress."""
    member = enrol_at(make_member(), timezone.now() - timedelta(days=days_ago))
    buy(member, "10.00", occurred_at=member.enrolled_at + timedelta(minutes=5))
    return member


def test_missions_close_marks_what_ran_out_missed_once(journey_on, make_member):
    late = _started(make_member, 70)  # second-purchase's deadline (day 60) has passed
    fresh = _started(make_member, 5)
    assert mission_row(late, "second-purchase").status == "in_progress"
    result = missions_close()
    assert result.rows == 1 and result.job == "missions_close"
    assert mission_row(late, "second-purchase").status == "missed"
    assert mission_row(late, "store-and-online").status == "in_progress"  # day 90 ahead
    assert mission_row(late, "first-purchase").status == "completed"
    assert {r.status for r in MemberMission.objects.filter(member=fresh)} == {
        "completed",
        "in_progress",
    }
    assert missions_close().rows == 0  # a second run finds nothing


def test_missions_close_counts_deadlines_in_the_market_time_zone(journey_on, make_member):
    market = Market.objects.get(code="SE")
    today = local_date(market, timezone.now())
    member = enrol_at(make_member(), local(today - timedelta(days=70), 12))
    buy(member, "10.00", occurred_at=member.enrolled_at + timedelta(minutes=5))
    deadline = mission_row(member, "second-purchase").deadline
    assert deadline == today - timedelta(days=10)
    # Late on the deadline in Stockholm it still counts; ten past midnight
    # it has run out, though in UTC it is still the deadline's evening.
    assert missions_close(as_of=local(deadline, 23, 30)).rows == 0
    just_after = local(deadline + timedelta(days=1), 0, 10)
    assert just_after.astimezone(UTC).date() == deadline
    assert missions_close(as_of=just_after).rows == 1
    assert mission_row(member, "second-purchase").status == "missed"


def test_a_missed_mission_is_not_completed_by_a_late_receipt(journey_on, make_member):
    member = _started(make_member, 70)
    missions_close()
    # A receipt of day 59 posted now: the mission was closed already.
    buy(member, "10.00", occurred_at=member.enrolled_at + timedelta(days=59))
    assert mission_row(member, "second-purchase").status == "missed"


def test_the_missions_close_command_runs_as_of(journey_on, make_member):
    member = _started(make_member, 70)
    out = io.StringIO()
    call_command(
        "missions_close", "--as-of", (timezone.now() - timedelta(days=30)).isoformat(), stdout=out
    )
    assert "missions_close: 0 rows" in out.getvalue()
    assert mission_row(member, "second-purchase").status == "in_progress"
    out = io.StringIO()
    call_command("missions_close", stdout=out)
    assert "missions_close: 1 rows" in out.getvalue()


def test_the_jobs_are_celery_tasks_with_beat_entries():
    import journeys.tasks  # noqa: F401 - registers the tasks, as the worker's autodiscovery does
    import rewards.tasks  # noqa: F401
    from config.celery import app

    for name in (
        "rewards.missions_close",
        "rewards.birthday_gifts",
        "rewards.tier_upgrade_gifts",
        "rewards.welcome_gifts",
    ):
        assert name in app.tasks, name
        assert any(task == name for task, _ in schedules().values()), name
        assert app.tasks[name].acks_late


def test_the_missions_close_task_runs_the_job(journey_on, make_member):
    missions_close_task = missions_close.task

    member = _started(make_member, 70)
    assert missions_close_task.apply().get() == "missions_close: 1 rows in 1 batches"
    assert mission_row(member, "second-purchase").status == "missed"


# --- the demo ---------------------------------------------------------------------


def test_the_demo_journey_has_five_missions_over_90_days(demo):
    missions = list(Mission.objects.order_by("order"))
    assert [(m.code, m.goal, m.window_start_day, m.window_end_day) for m in missions] == [
        ("complete-profile", "profile_completed", 0, 14),
        ("first-purchase", "first_purchase", 0, 30),
        ("second-purchase", "second_purchase_within", 0, 60),
        ("store-and-online", "store_and_online", 0, 90),
        ("welcome-survey", "survey_answered", 0, 30),
    ]
    assert [m.reward_points for m in missions] == [100, 200, 300, None, 100]
    assert missions[2].days == 30 and missions[3].reward.code == "coffee-voucher"
    assert all(m.active and not m.markets.exists() for m in missions)
    for mission in missions:
        mission.full_clean()
    rules = {(r.kind, r.reward_points) for r in GiftRule.objects.all()}
    assert rules == {("birthday", 200), ("welcome", 50), ("tier_upgrade", 500)}


def test_seeding_the_journey_again_changes_nothing(demo):
    Mission.objects.filter(code="first-purchase").update(reward_points=250)  # a staff edit stays
    assert journey_seed() == 0
    assert demo_club_seed().created == 0
    assert Mission.objects.count() == 5 and GiftRule.objects.count() == 3
    assert Mission.objects.get(code="first-purchase").reward_points == 250


def test_without_the_coffee_voucher_the_store_and_online_mission_pays_points(db):
    # A club without that reward (the demo club, loaded once per run, has it).
    Mission.objects.filter(code="store-and-online").delete()
    Reward.objects.filter(code="coffee-voucher").delete()
    journey_seed()
    mission = Mission.objects.get(code="store-and-online")
    assert mission.reward is None and mission.reward_points == 250


def test_a_mission_is_validated(demo):
    from django.core.exceptions import ValidationError

    mission = Mission(
        code="x",
        name="X",
        goal="second_purchase_within",
        window_start_day=10,
        window_end_day=5,
        reward_points=10,
    )
    with pytest.raises(ValidationError) as raised:
        mission.full_clean()
    assert {"days", "window_end_day"} <= set(raised.value.message_dict)


# --- the admin -----------------------------------------------------------------------


def test_the_mission_admin_shows_counts_and_the_latest_completion(
    journey_on, admin_client, make_member
):
    late = _started(make_member, 70)
    _started(make_member, 5)
    missions_close()
    response = admin_client.get(reverse("admin:journeys_mission_changelist"))
    assert response.status_code == 200
    rows = {row.code: row for row in response.context["cl"].result_list}
    assert (rows["first-purchase"].started_count, rows["first-purchase"].completed_count) == (2, 2)
    assert rows["second-purchase"].missed_count == 1
    assert rows["second-purchase"].started_count == 2
    assert rows["complete-profile"].started_count is None  # nobody yet
    assert rows["first-purchase"].latest == max(
        r.completed_at for r in MemberMission.objects.filter(mission__code="first-purchase")
    )
    page = response.content.decode()
    assert "latest completion" in page.lower()
    detail = admin_client.get(
        reverse("admin:journeys_mission_change", args=[rows["first-purchase"].pk])
    )
    assert detail.status_code == 200
    listing = admin_client.get(
        reverse("admin:journeys_membermission_changelist") + f"?member={late.pk}"
    )
    assert listing.status_code == 200 and len(listing.context["cl"].result_list) == 3


def test_member_missions_are_read_only_and_shown_on_the_member_page(
    journey_on, admin_client, make_member, rf, admin_user
):
    from django.contrib import admin

    member = _started(make_member, 5)
    model_admin = admin.site._registry[MemberMission]
    request = rf.get("/")
    request.user = admin_user
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    page = admin_client.get(reverse("admin:members_member_change", args=[member.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Welcome journey" in text
    # Names in the member's language (Swedish).
    assert "<td>Ditt första köp</td><td>completed</td><td>1 / 1</td>" in text
    assert "<td>Handla i butik och på webben</td><td>in progress</td><td>1 / 2</td>" in text
    assert "voucher: coffee-voucher" in text


def test_the_gift_rule_admin_lists_the_rules(demo, admin_client):
    response = admin_client.get(reverse("admin:rewards_giftrule_changelist"))
    assert response.status_code == 200
    assert "Birthday gift" in response.content.decode()
    add = admin_client.get(reverse("admin:rewards_giftrule_add"))
    assert add.status_code == 200
