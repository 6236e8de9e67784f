"""The member admin: one search box, the member page, adjusting points,
editing the profile and blocking a card."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from core.actors import SYSTEM
from loyalty.models import LedgerEntry, PointsAccount
from members.models import Card, Member

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/members/member/"


def change_url(member: Member) -> str:
    return reverse("admin:members_member_change", args=[member.pk])


def adjust_url(member: Member) -> str:
    return reverse("admin:members_member_adjust_points", args=[member.pk])


def found(admin_client: Any, term: str) -> list[Member]:
    response = admin_client.get(CHANGELIST, {"q": term})
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def member(make_member: Any) -> Member:
    return make_member(
        market="SE",
        points=1500,
        email="Sofia.Strand@Example.se",
        phone="070-123 45 99",
        first_name="Sofia",
        last_name="Strand",
    )


def test_the_list_shows_number_name_market_status_tier_balance_and_pending(admin_client, member):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    headers = [h["text"] for h in response.context["result_headers"]]
    assert [h.lower() for h in headers] == [
        "member number",
        "name",
        "market",
        "status",
        "tier",
        "balance",
        "pending",
    ]
    content = response.content.decode()
    assert member.member_number in content and "Sofia Strand" in content and "1500" in content


@pytest.mark.parametrize(
    "term",
    [
        "member_number",
        "card",
        "SOFIA.STRAND@example.SE",
        "0701234599",
        "070-123 45 99",
        "+46701234599",
    ],
)
def test_one_box_finds_the_member_by_each_identifier(admin_client, member, term):
    card = Card.objects.get(member=member)
    term = {"member_number": member.member_number, "card": card.number}.get(term, term)
    assert found(admin_client, term) == [member]


@pytest.mark.parametrize("term", ["Sofia", "strand", "example.se", "12345", "no-one@example.se"])
def test_the_box_matches_identifiers_exactly_not_fragments(admin_client, member, term):
    assert found(admin_client, term) == []


def test_the_member_page_shows_points_tier_cards_consents_and_the_ledger(admin_client, member):
    response = admin_client.get(change_url(member))
    assert response.status_code == 200
    content = response.content.decode()
    assert "1500" in content  # balance
    assert "Medlem" in content  # tier
    assert Card.objects.get(member=member).number in content
    assert "marketing_email" in content
    assert "test setup" in content  # the adjustment of make_member, in the ledger
    full_ledger = reverse("admin:loyalty_ledgerentry_changelist") + f"?member={member.pk}"
    assert full_ledger in content
    assert adjust_url(member) in content
    form_fields = response.context["adminform"].form.fields
    assert "balance" not in form_fields and "pending" not in form_fields
    assert "tier" not in form_fields and "market" not in form_fields


def test_the_member_page_lists_the_latest_100_entries_newest_first(admin_client, make_member):
    from loyalty.services import points_adjust

    member = make_member()
    for n in range(1, 103):
        points_adjust(actor=SYSTEM, member=member, points=n, reason=f"entry-{n:03d}")
    content = admin_client.get(change_url(member)).content.decode()
    assert "entry-102" in content and "entry-003" in content
    assert "entry-002" not in content and "entry-001" not in content
    assert content.index("entry-102") < content.index("entry-050")


def test_the_full_ledger_is_filtered_by_member(admin_client, member, make_member):
    other = make_member(points=7)
    response = admin_client.get(
        reverse("admin:loyalty_ledgerentry_changelist"), {"member": member.pk}
    )
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert rows and {entry.member_id for entry in rows} == {member.pk}
    assert other.pk not in {entry.member_id for entry in rows}


def test_adjust_points_books_an_adjust_entry_by_the_staff_user(admin_client, admin_user, member):
    assert admin_client.get(adjust_url(member)).status_code == 200
    response = admin_client.post(adjust_url(member), {"points": "-300", "reason": "Damaged goods"})
    assert response.status_code == 302 and response["Location"] == change_url(member)
    entry = LedgerEntry.objects.filter(member=member).latest("id")
    assert (entry.kind, entry.points, entry.reason) == ("adjust", -300, "Damaged goods")
    assert entry.staff_user_id == admin_user.pk
    assert PointsAccount.objects.get(member=member).balance == 1200
    assert any("Booked -300 points" in text for text in texts(response))


@pytest.mark.parametrize(
    "data",
    [
        {"points": "100", "reason": ""},
        {"points": "100", "reason": "   "},
        {"points": "", "reason": "Goodwill"},
        {"points": "0", "reason": "Goodwill"},
    ],
)
def test_adjust_points_refuses_a_missing_reason_or_points(admin_client, member, data):
    before = LedgerEntry.objects.filter(member=member).count()
    response = admin_client.post(adjust_url(member), data)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert any(text.startswith("Not booked") for text in texts(response))
    assert LedgerEntry.objects.filter(member=member).count() == before
    assert PointsAccount.objects.get(member=member).balance == 1500


def _profile_post(member: Member, **changes: Any) -> dict[str, Any]:
    cards = list(Card.objects.filter(member=member).order_by("issued_at", "id"))
    data: dict[str, Any] = {
        "first_name": member.first_name,
        "last_name": member.last_name,
        "email": member.email or "",
        "phone": member.phone or "",
        "birth_date": "",
        "language": member.language,
        "cards-TOTAL_FORMS": str(len(cards)),
        "cards-INITIAL_FORMS": str(len(cards)),
        "cards-MIN_NUM_FORMS": "0",
        "cards-MAX_NUM_FORMS": "0",
    }
    for index, card in enumerate(cards):
        data[f"cards-{index}-id"] = str(card.pk)
        data[f"cards-{index}-member"] = str(member.pk)
    data.update(changes)
    return {k: v for k, v in data.items() if v is not False}


def test_staff_edit_the_profile_through_member_update(admin_client, member):
    response = admin_client.post(
        change_url(member),
        _profile_post(
            member,
            last_name="Ström",
            phone="070 765 43 21",
            marketing_sms="on",
            balance="999999",
            pending="5",
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    member.refresh_from_db()
    assert member.last_name == "Ström"
    assert member.phone == "+46707654321"  # normalised in the member's market
    assert member.marketing_sms and member.consents_updated_at is not None
    account = PointsAccount.objects.get(member=member)
    assert (account.balance, account.pending) == (1500, 0)


def test_an_invalid_phone_is_a_form_error(admin_client, member):
    response = admin_client.post(change_url(member), _profile_post(member, phone="12"))
    assert response.status_code == 200
    assert "phone" in response.context["adminform"].form.errors
    member.refresh_from_db()
    assert member.phone == "+46701234599"


def test_an_email_of_another_member_is_refused(admin_client, member, make_member):
    other = make_member(email="taken@example.se")
    response = admin_client.post(
        change_url(member), _profile_post(member, email="TAKEN@example.se")
    )
    assert response.status_code == 302
    assert any("Not saved" in text and other.member_number in text for text in texts(response))
    member.refresh_from_db()
    assert member.email == "Sofia.Strand@Example.se"


def test_members_are_neither_added_nor_deleted_in_the_admin(admin_client, member):
    assert admin_client.get("/admin/members/member/add/").status_code == 403
    response = admin_client.post(
        reverse("admin:members_member_delete", args=[member.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert Member.objects.filter(pk=member.pk).exists()


def test_a_card_is_blocked_from_the_member_page(admin_client, member):
    card = Card.objects.get(member=member)
    url = reverse("admin:members_member_block_card", args=[member.pk, card.number])
    assert url in admin_client.get(change_url(member)).content.decode()
    assert admin_client.get(url).status_code == 200  # the confirmation
    response = admin_client.post(url)
    assert response.status_code == 302
    card.refresh_from_db()
    assert card.status == Card.Status.BLOCKED and card.blocked_at is not None
    assert url not in admin_client.get(change_url(member)).content.decode()
