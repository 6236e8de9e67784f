"""The member admin and tiers: overriding a member's tier, the tier history
on the member page, and the tier admin."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from club.dates import local_date
from club.models import Tier
from core.actors import staff_actor
from loyalty.models import TierChange
from members.models import Member

pytestmark = pytest.mark.django_db


def change_url(member: Member) -> str:
    return reverse("admin:members_member_change", args=[member.pk])


def override_url(member: Member) -> str:
    return reverse("admin:members_member_override_tier", args=[member.pk])


def texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def today(member: Member) -> Any:
    return local_date(member.market, timezone.now())


@pytest.fixture
def member(make_member: Any) -> Member:
    return make_member(market="SE", first_name="Sofia", last_name="Strand")


@pytest.fixture
def gold(demo: None) -> Tier:
    return Tier.objects.get(code="gold")


def test_the_member_page_links_to_the_override_page(admin_client, member):
    content = admin_client.get(change_url(member)).content.decode()
    assert override_url(member) in content and "Override tier" in content


def test_the_override_page_shows_the_form(admin_client, member, gold):
    response = admin_client.get(override_url(member))
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.fields) == {"tier", "reason", "until"}
    assert gold.pk in [tier.pk for tier in form.fields["tier"].queryset]
    assert "Medlem" in response.content.decode()  # the current tier


def test_override_books_a_staff_tier_change_and_sets_the_tier(
    admin_client, admin_user, member, gold
):
    until = today(member) + timedelta(days=90)
    response = admin_client.post(
        override_url(member),
        {"tier": str(gold.pk), "reason": "VIP customer", "until": until.isoformat()},
    )
    assert response.status_code == 302 and response["Location"] == change_url(member)
    member.refresh_from_db()
    assert member.tier_id == gold.pk
    assert member.tier_override_until == until and member.tier_valid_until == until
    change = TierChange.objects.get(member=member)
    assert change.cause == TierChange.Cause.STAFF
    assert change.reason == "VIP customer"
    assert change.staff_user_id == admin_user.pk
    assert (change.from_tier.code, change.to_tier_id) == ("member", gold.pk)
    assert change.valid_until == until
    assert any("Guld" in text and until.isoformat() in text for text in texts(response))


def test_override_until_today_is_allowed(admin_client, member, gold):
    response = admin_client.post(
        override_url(member),
        {"tier": str(gold.pk), "reason": "Goodwill", "until": today(member).isoformat()},
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.tier_id == gold.pk


@pytest.mark.parametrize(
    "case", ["empty reason", "blank reason", "past date", "no date", "bad date", "no tier"]
)
def test_override_refuses_a_missing_reason_or_a_past_date(admin_client, member, gold, case):
    data = {
        "tier": str(gold.pk),
        "reason": "VIP customer",
        "until": (today(member) + timedelta(days=30)).isoformat(),
    }
    field = {
        "empty reason": "reason",
        "blank reason": "reason",
        "past date": "until",
        "no date": "until",
        "bad date": "until",
        "no tier": "tier",
    }[case]
    data[field] = {
        "empty reason": "",
        "blank reason": "   ",
        "past date": (today(member) - timedelta(days=1)).isoformat(),
        "no date": "",
        "bad date": "31.02.2030",
        "no tier": "",
    }[case]
    response = admin_client.post(override_url(member), data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert any(text.startswith("Not overridden") for text in texts(response))
    member.refresh_from_db()
    assert member.tier.code == "member" and member.tier_override_until is None
    assert not TierChange.objects.filter(member=member).exists()


def test_a_validation_error_of_the_service_is_shown_on_the_form(
    admin_client, member, gold, monkeypatch
):
    from backoffice import admin as member_admin
    from core.errors import ValidationFailed

    def refuse(**kwargs: Any) -> None:
        raise ValidationFailed("The end date has passed.", errors={"until": ["Must not be past."]})

    monkeypatch.setattr(member_admin, "tier_override", refuse)
    response = admin_client.post(
        override_url(member),
        {"tier": str(gold.pk), "reason": "VIP", "until": today(member).isoformat()},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["until"] == ["Must not be past."]
    assert any("Not overridden: The end date has passed." in text for text in texts(response))


def test_the_history_section_renders_the_changes_newest_first(
    admin_client, admin_user, member, gold
):
    from loyalty.tiers import tier_override

    until = today(member) + timedelta(days=60)
    silver = Tier.objects.get(code="silver")
    tier_override(
        member=member,
        tier=silver,
        reason="first-reason",
        until=until,
        actor=staff_actor(admin_user),
    )
    tier_override(
        member=member, tier=gold, reason="second-reason", until=until, actor=staff_actor(admin_user)
    )
    response = admin_client.get(change_url(member))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Tier history" in content
    assert "first-reason" in content and "second-reason" in content
    assert content.index("second-reason") < content.index("first-reason")
    section = content[content.index("tier-history") :]
    assert "Silver" in section and "Guld" in section and "staff" in section
    assert until.isoformat() in section
    assert f"{admin_user} (staff)" in section
    # the override's end date next to the tier
    assert "override until" in content.lower()
    form_fields = response.context["adminform"].form.fields
    assert "tier_override_until" not in form_fields and "tier" not in form_fields


def test_the_history_section_says_when_there_is_none(admin_client, member):
    content = admin_client.get(change_url(member)).content.decode()
    assert "No tier changes yet." in content


def test_the_tier_admin_lists_and_edits_names(admin_client, gold):
    response = admin_client.get(reverse("admin:club_tier_changelist"))
    assert response.status_code == 200
    headers = [
        h["text"].lower()
        for h in response.context["result_headers"]
        if "action-toggle" not in h["text"]
    ]
    assert headers == ["code", "name", "rank", "threshold", "multiplier"]
    url = reverse("admin:club_tier_change", args=[gold.pk])
    response = admin_client.get(url)
    assert response.status_code == 200 and "names" in response.context["adminform"].form.fields
    response = admin_client.post(
        url,
        {
            "code": gold.code,
            "name": gold.name,
            "names": '{"sv": "Guld", "en": "Gold"}',
            "rank": str(gold.rank),
            "threshold": str(gold.threshold),
            "multiplier": str(gold.multiplier),
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    gold.refresh_from_db()
    assert gold.names == {"sv": "Guld", "en": "Gold"}
