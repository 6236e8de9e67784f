"""The lookup carries the benefits a member can use now, read with one small query."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from members.models import Member
from rewards import selectors
from rewards.models import Benefit, MemberList
from rewards.selectors import usable_benefits
from tests.helpers import set_tier, use

pytestmark = pytest.mark.django_db

LOOKUP = "/api/v1/members/lookup"


@pytest.fixture
def checkout(make_api):
    return make_api(scopes=["members:read", "benefits:use"])


def lookup_benefits(api, member):
    response = api.get(LOOKUP, {"member_number": member.member_number})
    assert response.status_code == 200, response.content
    return response.json()["benefits"]


def test_a_new_member_can_use_the_weekly_coffee(checkout, make_member):
    member = make_member(market="SE")
    assert lookup_benefits(checkout, member) == [
        {"code": "coffee", "name": "Gratis kaffe", "remaining": 1}
    ]


def test_the_coffee_disappears_from_the_lookup_once_used_this_week(checkout, make_member):
    member = make_member(market="SE")
    other = make_member(market="SE")
    assert use(checkout, member, "coffee").status_code == 201
    assert lookup_benefits(checkout, member) == []
    assert lookup_benefits(checkout, other) == [
        {"code": "coffee", "name": "Gratis kaffe", "remaining": 1}
    ]


def test_a_gold_member_sees_every_benefit_with_what_remains(checkout, make_member):
    member = set_tier(make_member(market="SE"), "gold")
    assert use(checkout, member, "member-evening").status_code == 201
    assert lookup_benefits(checkout, member) == [
        {"code": "coffee", "name": "Gratis kaffe", "remaining": 1},
        {"code": "free-shipping", "name": "Fri frakt", "remaining": None},
        {"code": "early-access", "name": "Förtur till kampanjer", "remaining": None},
        {"code": "extended-returns", "name": "Förlängd returrätt", "remaining": None},
        {"code": "member-evening", "name": "Medlemskväll", "remaining": 1},
    ]


def test_a_suspended_member_can_use_nothing(checkout, make_member):
    member = make_member(market="SE")
    Member.objects.filter(pk=member.pk).update(status=Member.Status.SUSPENDED)
    body = checkout.get(LOOKUP, {"member_number": member.member_number}).json()
    assert body["status"] == "suspended" and body["benefits"] == []


def test_usable_benefits_is_one_query_with_a_warm_catalogue(make_member):
    member = set_tier(make_member(market="SE"), "gold")
    press = MemberList.objects.create(name="Press")
    press.members.add(member)
    Benefit.objects.get(code="extended-returns").member_lists.set([press])
    selectors.catalogue_forget()
    usable_benefits(member_id=member.pk)  # loads the catalogue
    with CaptureQueriesContext(connection) as queries:
        found = usable_benefits(member_id=member.pk)
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert [b["code"] for b in found] == [
        "coffee",
        "free-shipping",
        "early-access",
        "extended-returns",
        "member-evening",
    ]


def test_the_lookup_adds_one_query_for_the_benefits(checkout, make_member):
    member = make_member(market="SE")
    lookup_benefits(checkout, member)  # warm: key, catalogue
    with CaptureQueriesContext(connection) as queries:
        lookup_benefits(checkout, member)
    benefit_queries = [q for q in queries if "rewards_" in q["sql"]]
    assert len(benefit_queries) == 1, [q["sql"] for q in queries]


def test_a_list_benefit_shows_only_for_members_on_the_list(checkout, make_member):
    member, outsider = make_member(market="SE"), make_member(market="SE")
    pilot = MemberList.objects.create(name="Pilot")
    pilot.members.add(member)
    perk = Benefit.objects.create(
        code="pilot-perk",
        name="Pilot perk",
        kind="partner",
        allowance=None,
        period="unlimited",
        channel="both",
        ordering=99,
    )
    perk.tiers.set([member.tier])
    perk.member_lists.set([pilot])
    selectors.catalogue_forget()
    assert [b["code"] for b in lookup_benefits(checkout, member)] == ["coffee", "pilot-perk"]
    assert [b["code"] for b in lookup_benefits(checkout, outsider)] == ["coffee"]


def test_a_catalogue_edit_reaches_the_lookup_when_the_snapshot_ages(
    checkout, make_member, monkeypatch
):
    member = make_member(market="SE")
    assert len(lookup_benefits(checkout, member)) == 1
    Benefit.objects.filter(code="coffee").update(active=False)
    assert len(lookup_benefits(checkout, member)) == 1  # the snapshot, for a few seconds
    monkeypatch.setattr(selectors, "CATALOGUE_TTL", 0.0)
    assert lookup_benefits(checkout, member) == []
