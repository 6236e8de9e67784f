"""The demo club's benefits, and the staff admin for benefits."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from backoffice.demo import demo_club_seed
from rewards.models import Benefit, BenefitUse, MemberList
from rewards.selectors import usable_benefits
from tests.helpers import use

pytestmark = pytest.mark.django_db

DEMO = {
    # code: (kind, allowance, period, channel, tiers)
    "coffee": ("free_item", 1, "week", "store", {"member", "silver", "gold"}),
    "free-shipping": ("free_shipping", None, "unlimited", "online", {"silver", "gold"}),
    "early-access": ("early_access", None, "unlimited", "both", {"silver", "gold"}),
    "extended-returns": ("extended_returns", None, "unlimited", "both", {"gold"}),
    "member-evening": ("event", 2, "year", "store", {"gold"}),
}


def test_the_demo_club_has_the_five_benefits_of_the_design(demo):
    found = {
        b.code: (b.kind, b.allowance, b.period, b.channel, {t.code for t in b.tiers.all()})
        for b in Benefit.objects.prefetch_related("tiers")
    }
    assert found == DEMO
    for benefit in Benefit.objects.all():
        assert benefit.active and not benefit.markets.exists() and not benefit.member_lists.exists()
        assert set(benefit.names) == {"sv", "en"}
    assert Benefit.objects.get(code="extended-returns").description == "90-day returns."


def test_seeding_the_demo_club_again_changes_nothing(demo):
    Benefit.objects.filter(code="coffee").update(allowance=3)  # a staff edit stays
    report = demo_club_seed()
    assert report.created == 0, str(report)
    assert Benefit.objects.count() == 5
    assert Benefit.objects.get(code="coffee").allowance == 3
    assert Benefit.objects.get(code="coffee").tiers.count() == 3


def test_demo_members_can_use_the_coffee(demo):
    from members.models import Member

    anna = Member.objects.get(email="anna.berg@example.se")
    assert usable_benefits(member_id=anna.pk) == [
        {"code": "coffee", "name": "Gratis kaffe", "remaining": 1}
    ]


def test_benefit_uses_are_read_only_for_everyone(rf, admin_user):
    request = rf.get("/")
    request.user = admin_user
    model_admin = admin.site._registry[BenefitUse]
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.has_view_permission(request)


def test_staff_see_the_uses_of_a_member(admin_client, api, make_member):
    member = make_member(market="SE")
    assert use(api, member, "coffee").status_code == 201
    page = admin_client.get(
        reverse("admin:rewards_benefituse_changelist"), {"q": member.member_number}
    )
    assert page.status_code == 200
    assert member.member_number in page.content.decode()
    row = BenefitUse.objects.get(member=member)
    url = reverse("admin:rewards_benefituse_change", args=[row.pk])
    assert admin_client.post(url, {"channel": "online"}).status_code == 403
    row.refresh_from_db()
    assert row.channel == "store"


def test_staff_edit_a_benefit_and_the_lookup_follows(admin_client, make_member):
    member = make_member(market="SE")
    assert usable_benefits(member_id=member.pk)[0]["remaining"] == 1
    coffee = Benefit.objects.get(code="coffee")
    url = reverse("admin:rewards_benefit_change", args=[coffee.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(
        url,
        {
            "code": "coffee",
            "name": "Free coffee",
            "names": '{"sv": "Gratis kaffe"}',
            "description": "",
            "kind": "free_item",
            "active": "on",
            "ordering": "0",
            "tiers": [t.pk for t in coffee.tiers.all()],
            "allowance": "2",
            "period": "week",
            "channel": "store",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Benefit.objects.get(code="coffee").allowance == 2
    # The admin forgets this process's snapshot: no wait for the edit.
    assert usable_benefits(member_id=member.pk)[0]["remaining"] == 2


def test_a_used_benefit_cannot_be_deleted_only_retired(rf, admin_user, api, make_member):
    member = make_member(market="SE")
    use(api, member, "coffee")
    request = rf.get("/")
    request.user = admin_user
    model_admin = admin.site._registry[Benefit]
    assert not model_admin.has_delete_permission(request, Benefit.objects.get(code="coffee"))
    assert model_admin.has_delete_permission(request, Benefit.objects.get(code="early-access"))


def test_member_lists_are_managed_in_the_admin(admin_client, make_member):
    member = make_member(market="SE")
    response = admin_client.post(
        reverse("admin:rewards_memberlist_add"),
        {"name": "Press", "description": "Journalists", "members": str(member.pk)},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(MemberList.objects.get(name="Press").members.all()) == [member]


def test_names_must_be_an_object_of_language_and_name(admin_client, demo):
    from club.models import Tier

    url = reverse("admin:rewards_benefit_add")
    base = {
        "code": "new-perk",
        "name": "New perk",
        "description": "",
        "kind": "partner",
        "active": "on",
        "ordering": "0",
        "tiers": [Tier.objects.get(code="gold").pk],
        "allowance": "",
        "period": "unlimited",
        "channel": "both",
    }
    response = admin_client.post(url, {**base, "names": '["Ny förmån"]'})
    assert response.status_code == 200 and not Benefit.objects.filter(code="new-perk").exists()
    response = admin_client.post(url, {**base, "names": '{"sv": "Ny förmån"}'})
    assert response.status_code == 302
    assert Benefit.objects.get(code="new-perk").names == {"sv": "Ny förmån"}
