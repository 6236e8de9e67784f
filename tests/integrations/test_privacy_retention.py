"""Retention: members inactive longer than their market's setting are
erased by the `members_retention` job, noticed 30 days before; and the
admin's export and erase, for staff holding the permissions."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from club.models import Market
from core.models import OutboxEvent
from integrations.privacy import members_retention
from journeys.models import ActivityEvent
from loyalty.models import LedgerEntry
from members.models import ConsentChange, Member
from tests.backoffice.test_member_admin import _profile_post
from tests.helpers import assert_ledger_consistent, buy, enrol_at

pytestmark = pytest.mark.django_db


def quiet_since(member: Member, moment: Any) -> Member:
    """Enrolled at `moment` (its ledger entries, append-only, keep their dates)."""
    return enrol_at(member, moment)


def notices(member: Member) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(topic="member.inactive_notice", member_id=member.pk))


def test_nothing_is_erased_without_the_setting(make_member):
    old = quiet_since(make_member(market="SE"), timezone.now() - timedelta(days=4000))
    members_retention(as_of=timezone.now())
    assert Member.objects.get(pk=old.pk).status == "active"
    assert notices(old) == []


def test_the_job_erases_only_the_inactive_past_the_setting_and_notices_once(make_member):
    Market.objects.filter(code="SE").update(inactive_retention_days=365)
    now = timezone.now()
    gone = quiet_since(make_member(market="SE"), now - timedelta(days=400))
    moved = quiet_since(make_member(market="SE", points=40), now - timedelta(days=400))
    soon = quiet_since(make_member(market="SE"), now - timedelta(days=350))
    active = quiet_since(make_member(market="SE"), now - timedelta(days=400))
    buy(active, "100.00")  # a purchase: a sign of life
    fresh = make_member(market="SE")
    other_market = quiet_since(make_member(market="NO"), now - timedelta(days=400))

    result = members_retention(as_of=now)
    assert result.rows == 2

    assert Member.objects.get(pk=gone.pk).status == "erased"
    assert Member.objects.get(pk=gone.pk).email is None
    assert not LedgerEntry.objects.filter(member=gone).exists()  # nothing to close
    assert OutboxEvent.objects.filter(topic="member.erased", member_id=gone.pk).count() == 1
    for kept in (soon, moved, active, fresh, other_market):
        assert Member.objects.get(pk=kept.pk).status == "active"
    [notice] = notices(soon)
    assert notice.payload["member_number"] == soon.member_number
    assert notices(active) == notices(moved) == notices(fresh) == notices(other_market) == []
    assert_ledger_consistent()

    # Again the next day: the notice is not sent twice, nothing more erased.
    members_retention(as_of=now + timedelta(days=1))
    assert len(notices(soon)) == 1
    assert Member.objects.get(pk=soon.pk).status == "active"
    # Past its period, the noticed member is erased.
    call_command("members_retention", "--as-of", (now + timedelta(days=20)).isoformat())
    assert Member.objects.get(pk=soon.pk).status == "erased"
    assert_ledger_consistent()


def test_an_activity_event_is_a_sign_of_life(make_member):
    Market.objects.filter(code="SE").update(inactive_retention_days=100)
    now = timezone.now()
    member = quiet_since(make_member(market="SE"), now - timedelta(days=400))
    ActivityEvent.objects.create(
        member=member,
        type="app_login",
        occurred_at=now - timedelta(days=5),
        dedupe_key="k",
        body_hash="h",
    )
    members_retention(as_of=now)
    assert Member.objects.get(pk=member.pk).status == "active"
    assert notices(member) == []


# --- the admin ------------------------------------------------------------------


@pytest.fixture
def staff(db: Any) -> User:
    user = User.objects.create_user("dpo", password="x", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="members", codename__in=["view_member", "change_member"]
        )
    )
    return user


def grant(user: User, codename: str) -> User:
    user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)  # the permission cache starts anew


def test_admin_export_and_erase_need_the_permissions(client, staff, make_member):
    member = make_member(market="SE", points=30, email="admin.erase@example.se")
    client.force_login(staff)
    export = reverse("admin:members_member_export", args=[member.pk])
    erase = reverse("admin:members_member_erase", args=[member.pk])
    page = client.get(reverse("admin:members_member_change", args=[member.pk]))
    assert page.status_code == 200
    assert export not in page.content.decode() and erase not in page.content.decode()
    assert client.get(export).status_code == 403
    assert client.post(erase).status_code == 403
    assert Member.objects.get(pk=member.pk).status == "active"

    grant(staff, "export_member")
    grant(staff, "erase_member")
    page = client.get(reverse("admin:members_member_change", args=[member.pk]))
    assert export in page.content.decode() and erase in page.content.decode()

    response = client.get(export)
    assert response.status_code == 200
    body = json.loads(b"".join(response.streaming_content))
    assert body["member"]["email"] == "admin.erase@example.se"

    confirm = client.get(erase)
    assert confirm.status_code == 200 and b"cannot be undone" in confirm.content
    assert Member.objects.get(pk=member.pk).status == "active"
    done = client.post(erase)
    assert done.status_code == 302
    assert Member.objects.get(pk=member.pk).status == "erased"
    assert_ledger_consistent()
    logged = list(
        LogEntry.objects.filter(object_id=str(member.pk), user=staff).values_list(
            "change_message", flat=True
        )
    )
    assert any("Exported" in m and "dpo" in m for m in logged), logged
    assert any("Erased" in m and "dpo" in m for m in logged), logged


def test_a_consent_changed_in_the_admin_names_the_staff_user(admin_client, admin_user, make_member):
    member = make_member(market="SE", email="admin.consent@example.se")
    response = admin_client.post(
        reverse("admin:members_member_change", args=[member.pk]),
        _profile_post(member, profiling="on"),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    row = ConsentChange.objects.get(member=member, consent="profiling")
    assert row.granted is True and row.source == admin_user.get_username()
