"""Staff permissions that match the harm: each dangerous action has its own
permission, the admin offers it only to staff who hold it and refuses it
(403) to others; the groups `Club support` and `Club admin` exist after
migrate; support adjusts up to SUPPORT_ADJUST_LIMIT; the admin login locks
out after repeated failures (django-axes)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from backoffice.staff import CLUB_ADMIN, CLUB_SUPPORT, staff_groups_install
from club.models import Tier
from core.models import ApiClient
from core.services import api_client_create
from loyalty.models import LedgerEntry
from members.models import Member
from rewards.models import Voucher
from rewards.services import voucher_issue
from tests.helpers import make_reward

pytestmark = pytest.mark.django_db

DANGEROUS = {
    "members.adjust_points",
    "members.adjust_points_unlimited",
    "members.override_tier",
    "members.export_member",
    "members.erase_member",
    "rewards.reactivate_voucher",
    "core.create_api_key",
}


def perms_of(group_name: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=group_name).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def staff(*perms: str, groups: tuple[str, ...] = (), name: str = "staffer") -> User:
    user = User.objects.create_user(name, password="x-Very-long-pass-1", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    for group in groups:
        user.groups.add(Group.objects.get(name=group))
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def member(make_member: Any) -> Member:
    return make_member(market="SE", points=500)


def member_url(name: str, member: Member) -> str:
    return reverse(f"admin:members_member_{name}", args=[member.pk])


# --- the groups -------------------------------------------------------------------


def test_the_groups_exist_after_migrate_with_what_each_may_do():
    support, admin = perms_of(CLUB_SUPPORT), perms_of(CLUB_ADMIN)
    assert {"members.view_member", "loyalty.view_ledgerentry", "rewards.view_voucher"} <= support
    assert support & DANGEROUS == {"members.adjust_points"}
    assert not any(p.split(".")[1].startswith(("add_", "change_", "delete_")) for p in support)
    assert DANGEROUS <= admin
    assert {"members.change_member", "rewards.change_reward", "core.change_apiclient"} <= admin
    assert "django_celery_beat.change_periodictask" in admin
    # Staff accounts stay with superusers.
    assert not any(p.startswith("auth.") for p in admin | support)


def test_installing_the_groups_again_changes_nothing_and_keeps_additions():
    extra = Permission.objects.get(content_type__app_label="auth", codename="view_user")
    Group.objects.get(name=CLUB_SUPPORT).permissions.add(extra)
    before = (perms_of(CLUB_SUPPORT), perms_of(CLUB_ADMIN), Group.objects.count())
    staff_groups_install()
    staff_groups_install()
    assert (perms_of(CLUB_SUPPORT), perms_of(CLUB_ADMIN), Group.objects.count()) == before
    assert "auth.view_user" in perms_of(CLUB_SUPPORT)


# --- each permission: shown only to those who hold it, 403 for the others ------------


def test_adjusting_points_needs_its_permission(member):
    viewer = logged_in(staff("members.view_member", "members.change_member"))
    page = viewer.get(member_url("change", member)).content.decode()
    assert "Adjust points" not in page and "Override tier" not in page
    assert viewer.get(member_url("adjust_points", member)).status_code == 403
    response = viewer.post(member_url("adjust_points", member), {"points": 5, "reason": "r"})
    assert response.status_code == 403
    assert not LedgerEntry.objects.filter(member=member, kind="adjust", staff_user__isnull=False)

    adjuster = logged_in(staff("members.view_member", "members.adjust_points", name="adj"))
    assert "Adjust points" in adjuster.get(member_url("change", member)).content.decode()
    response = adjuster.post(member_url("adjust_points", member), {"points": 5, "reason": "r"})
    assert response.status_code == 302
    assert (
        LedgerEntry.objects.get(member=member, kind="adjust", staff_user__isnull=False).points == 5
    )


def test_overriding_the_tier_needs_its_permission(member):
    gold = Tier.objects.get(code="gold")
    body = {"tier": gold.pk, "reason": "VIP", "until": str(timezone.now().date() + timedelta(30))}
    viewer = logged_in(staff("members.view_member", "members.change_member"))
    assert viewer.post(member_url("override_tier", member), body).status_code == 403
    assert Member.objects.get(pk=member.pk).tier.code == "member"

    overrider = logged_in(staff("members.view_member", "members.override_tier", name="ovr"))
    assert "Override tier" in overrider.get(member_url("change", member)).content.decode()
    assert overrider.post(member_url("override_tier", member), body).status_code == 302
    assert Member.objects.get(pk=member.pk).tier.code == "gold"


@pytest.mark.parametrize(
    ("perm", "name", "label"),
    [("members.export_member", "export", "Export"), ("members.erase_member", "erase", "Erase")],
)
def test_export_and_erase_need_their_permissions(member, perm, name, label):
    link = f'href="{member_url(name, member)}"'
    viewer = logged_in(staff("members.view_member", "members.change_member"))
    assert link not in viewer.get(member_url("change", member)).content.decode()
    assert viewer.get(member_url(name, member)).status_code == 403
    assert viewer.post(member_url(name, member)).status_code == 403
    assert Member.objects.get(pk=member.pk).status == "active"

    holder = logged_in(staff("members.view_member", perm, name="holder"))
    assert link in holder.get(member_url("change", member)).content.decode()
    assert holder.get(member_url(name, member)).status_code == 200


def test_reactivating_a_voucher_needs_its_permission(make_member):
    voucher = voucher_issue(member=make_member(), reward=make_reward(), source="gift")
    url = reverse("admin:rewards_voucher_changelist")
    body = {"action": "reactivate", "_selected_action": [voucher.pk]}

    viewer = logged_in(staff("rewards.view_voucher"))
    assert 'value="reactivate"' not in viewer.get(url).content.decode()
    assert viewer.post(url, body).status_code == 403

    holder = logged_in(staff("rewards.view_voucher", "rewards.reactivate_voucher", name="re"))
    assert 'value="reactivate"' in holder.get(url).content.decode()
    # Offered and run: the service answers (an unused voucher has nothing to undo).
    page = holder.post(url, body, follow=True).content.decode()
    assert "not reactivated" in page
    assert Voucher.objects.get(pk=voucher.pk).status == "issued"


def test_creating_or_rotating_an_api_key_needs_its_permission(demo):
    client, _ = api_client_create(name="pos", scopes=["members:read"])
    add_url = reverse("admin:core_apiclient_add")
    list_url = reverse("admin:core_apiclient_changelist")
    body = {"name": "sneaky", "scopes": ["members:read"]}
    rotate = {"action": "rotate_key", "_selected_action": [client.pk]}

    editor = logged_in(staff("core.view_apiclient", "core.add_apiclient", "core.change_apiclient"))
    assert editor.get(add_url).status_code == 403
    assert editor.post(add_url, body).status_code == 403
    assert 'value="rotate_key"' not in editor.get(list_url).content.decode()
    assert editor.post(list_url, rotate).status_code == 403
    assert not ApiClient.objects.filter(name="sneaky").exists()
    digest = ApiClient.objects.get(pk=client.pk).key_digest

    holder = logged_in(
        staff("core.view_apiclient", "core.change_apiclient", "core.create_api_key", name="keys")
    )
    assert holder.get(add_url).status_code == 200
    # Both answer the one page that shows the new key (core/admin.py).
    assert holder.post(add_url, body).status_code == 200
    assert ApiClient.objects.filter(name="sneaky").exists()
    assert holder.post(list_url, rotate).status_code == 200
    assert ApiClient.objects.get(pk=client.pk).key_digest != digest


# --- the groups at work: support adjusts within the limit, admin does all ---------------


def test_support_adjusts_up_to_the_limit_and_no_more(member, settings):
    settings.SUPPORT_ADJUST_LIMIT = 1000
    support = logged_in(staff(groups=(CLUB_SUPPORT,)))
    url = member_url("adjust_points", member)
    page = support.get(member_url("change", member)).content.decode()
    assert "Adjust points" in page and "Override tier" not in page
    assert 'href="' + member_url("erase", member) not in page

    for points in (1001, -1001):
        response = support.post(url, {"points": points, "reason": "goodwill"})
        assert response.status_code == 200
        assert "at most 1000 points" in response.content.decode()
    assert not LedgerEntry.objects.filter(member=member, staff_user__isnull=False).exists()

    assert support.post(url, {"points": 1000, "reason": "goodwill"}).status_code == 302
    assert support.post(url, {"points": -1000, "reason": "undo"}).status_code == 302
    booked = LedgerEntry.objects.filter(member=member, staff_user__isnull=False)
    assert sorted(booked.values_list("points", flat=True)) == [-1000, 1000]
    # Support may search and view, but not edit the profile or do the rest.
    assert support.get(reverse("admin:members_member_changelist"), {"q": "x"}).status_code == 200
    assert support.get(member_url("override_tier", member)).status_code == 403
    assert support.get(member_url("export", member)).status_code == 403
    assert support.get(reverse("admin:core_apiclient_add")).status_code == 403


def test_club_admin_adjusts_beyond_the_support_limit(member, settings):
    settings.SUPPORT_ADJUST_LIMIT = 1000
    club_admin = logged_in(staff(groups=(CLUB_ADMIN,)))
    url = member_url("adjust_points", member)
    assert club_admin.post(url, {"points": 25_000, "reason": "migration fix"}).status_code == 302
    assert LedgerEntry.objects.get(member=member, staff_user__isnull=False).points == 25_000
    page = club_admin.get(member_url("change", member)).content.decode()
    for label in ("Adjust points", "Override tier", "Export", "Erase"):
        assert label in page


# --- the admin login is throttled -------------------------------------------------------

LOGIN = "/admin/login/"


def login(client: Client, username: str, password: str) -> Any:
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})


def test_the_admin_login_locks_out_a_username_from_an_ip_after_repeated_failures(settings):
    settings.AXES_FAILURE_LIMIT = 3
    staff(name="anna")
    staff(name="bo")
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(2):
        assert login(attacker, "anna", "wrong").status_code == 200  # the form again
    assert login(attacker, "anna", "wrong").status_code == 429
    # Locked: even the right password does not get in.
    response = login(attacker, "anna", "x-Very-long-pass-1")
    assert response.status_code == 429
    assert "_auth_user_id" not in attacker.session
    # The lockout is of the pair: another user from that IP, and the same
    # user from another IP, still log in.
    assert login(attacker, "bo", "x-Very-long-pass-1").status_code == 302
    elsewhere = Client(REMOTE_ADDR="198.51.100.2")
    assert login(elsewhere, "anna", "x-Very-long-pass-1").status_code == 302


def test_a_lockout_ends_after_the_cool_off(settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    staff(name="anna")
    client = Client(REMOTE_ADDR="203.0.113.8")
    login(client, "anna", "wrong")
    assert login(client, "anna", "wrong").status_code == 429
    assert login(client, "anna", "x-Very-long-pass-1").status_code == 429
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert login(client, "anna", "x-Very-long-pass-1").status_code == 302


def test_the_lockout_counts_the_client_ip_behind_the_trusted_proxies(settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.TRUSTED_PROXY_COUNT = 1
    staff(name="anna")
    proxy = "10.0.0.1"  # every request arrives from the load balancer
    one = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.9")
    other = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.3")
    login(one, "anna", "wrong")
    assert login(one, "anna", "wrong").status_code == 429
    assert login(other, "anna", "x-Very-long-pass-1").status_code == 302
