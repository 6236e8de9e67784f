"""Privacy: the consent history, the export of everything about a member,
and erasure (GDPR articles 15, 17, 20), with the books still proven."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from club.models import Tier
from core.actors import staff_actor
from core.errors import MemberInactive
from core.models import OutboxEvent
from journeys.models import ActivityEvent
from loyalty.models import LedgerEntry, Lot, PointsAccount
from loyalty.services import Line, points_adjust, purchase_book
from loyalty.tiers import tier_override
from members.models import Card, Member
from members.services import consent_changes_record, member_update
from tests.helpers import (
    SYSTEM,
    account,
    assert_ledger_consistent,
    assert_problem,
    buy,
    claim,
    give_back,
    make_reward,
    set_window,
    use,
)

pytestmark = pytest.mark.django_db


def url(member: Member, tail: str = "") -> str:
    return f"/api/v1/members/{member.member_number}{tail}"


def export(api: Any, member: Member) -> dict[str, Any]:
    response = api.get(url(member, "/export"))
    assert response.status_code == 200, response
    assert response.streaming
    assert response["Content-Type"] == "application/json"
    return json.loads(b"".join(response.streaming_content))


def erase(api: Any, member: Member, key: str | None = None) -> Any:
    return api.post(url(member, "/erase"), HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex)


@pytest.fixture
def anna(make_member: Any) -> Member:
    return make_member(
        market="SE",
        points=500,
        email="anna.privacy@example.se",
        phone="+46701239876",
        first_name="Anna",
        last_name="Lind",
        birth_date=date(1990, 1, 2),
        consents={"marketing_email": True, "profiling": True},
    )


# --- consents -------------------------------------------------------------------


def test_consent_history_from_each_source(api, admin_client, admin_user):
    enrolled = api.post(
        "/api/v1/members",
        {"market": "SE", "email": "consents@example.se", "consents": {"marketing_email": True}},
        format="json",
    )
    assert enrolled.status_code == 201, enrolled.content
    member = Member.objects.get(member_number=enrolled.json()["member_number"])
    patched = api.patch(url(member), {"consents": {"marketing_sms": True}}, format="json")
    assert patched.status_code == 200, patched.content
    # As the admin's member page saves it: the staff user is the source.
    member.refresh_from_db()
    member_update(
        member=member, changes={"consents": {"profiling": True}}, actor=staff_actor(admin_user)
    )
    # An import writes its rows with the source `import` (tests/integrations/test_import_members).
    consent_changes_record(
        member=member,
        consents={"marketing_email": False},
        source="import",
        at=timezone.now() + timedelta(seconds=1),
    )
    Member.objects.filter(pk=member.pk).update(marketing_email=False)
    response = api.get(url(member, "/consents"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["current"] == {"marketing_email": False, "marketing_sms": True, "profiling": True}
    history = [(h["consent"], h["granted"], h["source"]) for h in body["history"]]
    assert history == [
        ("marketing_email", False, "import"),
        ("profiling", True, admin_user.get_username()),
        ("marketing_sms", True, "test client"),
        ("marketing_email", True, "test client"),
    ]
    times = [h["at"] for h in body["history"]]
    assert times == sorted(times, reverse=True)


def test_consents_need_members_read_and_the_market(make_api, anna):
    assert_problem(
        make_api(scopes=["purchases:write"]).get(url(anna, "/consents")), 403, "permission_denied"
    )
    assert_problem(make_api(markets=["NO"]).get(url(anna, "/consents")), 404, "not_found")


# --- export ---------------------------------------------------------------------


def test_export_contains_every_kind_of_record(journey_on, api, anna):
    purchase = buy(anna, "300.00")
    give_back(purchase, "100.00")
    redeemed = api.post(
        "/api/v1/redemptions",
        {"member": {"member_number": anna.member_number}, "points": 10, "store_code": "SE-001"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="privacy-redeem",
    )
    assert redeemed.status_code == 201, redeemed.content
    make_reward("privacy-mug", points_cost=50)
    assert claim(api, anna, "privacy-mug").status_code == 201
    assert use(api, anna, "coffee").status_code == 201
    event = api.post(
        "/api/v1/events",
        {
            "member": {"member_number": anna.member_number},
            "type": "profile_completed",
            "occurred_at": (timezone.now() - timedelta(minutes=1)).isoformat(),
            "properties": {"favourite": "hammers"},
        },
        format="json",
    )
    assert event.status_code == 201, event.content
    consents = api.patch(url(anna), {"consents": {"marketing_sms": True}}, format="json")
    assert consents.status_code == 200, consents.content
    anna.refresh_from_db()
    tier_override(
        member=anna,
        tier=Tier.objects.get(code="gold"),
        reason="privacy test",
        until=timezone.now().date() + timedelta(days=30),
        actor=SYSTEM,
    )

    response = api.get(url(anna, "/export"))
    assert response.status_code == 200 and response.streaming
    chunks = list(response.streaming_content)
    body = json.loads(b"".join(chunks))
    # Written piece by piece: at least one piece per record.
    records = sum(len(v) for v in body.values() if isinstance(v, list))
    assert len(chunks) > records
    assert body["member"]["member_number"] == anna.member_number
    assert body["member"]["email"] == "anna.privacy@example.se"
    assert body["member"]["first_name"] == "Anna"
    assert [c["number"] for c in body["cards"]] == [anna.cards.get().number]
    assert body["consents"]["current"]["profiling"] is True
    assert [(h["consent"], h["granted"]) for h in body["consents"]["history"]] == [
        ("marketing_sms", True)
    ]
    assert [t["to_tier__code"] for t in body["tier_history"]][-1] == "gold"
    kinds = {e["kind"] for e in body["ledger"]}
    assert {"adjust", "earn", "return", "redeem"} <= kinds
    assert len(body["ledger"]) == LedgerEntry.objects.filter(member=anna).count()
    assert [p["receipt_id"] for p in body["purchases"]] == [purchase["receipt_id"]]
    assert len(body["returns"]) == 1 and body["returns"][0]["total"] == "100.00"
    assert [r["points"] for r in body["redemptions"]] == [10]
    assert [v["reward__code"] for v in body["vouchers"]] == ["privacy-mug"]
    assert [u["benefit__code"] for u in body["benefit_uses"]] == ["coffee"]
    assert "complete-profile" in {m["mission__code"] for m in body["missions"]}
    assert [e["properties"] for e in body["events"]] == [{"favourite": "hammers"}]
    assert body["surveys"] == [] and body["insights"] is None
    assert body["exported_at"]


def test_export_needs_the_privacy_scope_and_the_market(make_api, anna):
    response = make_api(scopes=["members:read"]).get(url(anna, "/export"))
    assert_problem(response, 403, "permission_denied")
    assert_problem(make_api(markets=["NO"]).get(url(anna, "/export")), 404, "not_found")


# --- erasure --------------------------------------------------------------------


def test_erase_removes_personal_data_and_keeps_the_books(api, anna):
    set_window("SE", 30)
    purchase = buy(anna, "300.00")  # pending points
    card = anna.cards.get().number
    ActivityEvent.objects.create(
        member=anna,
        type="survey_answered",
        occurred_at=timezone.now(),
        properties={"comment": "call me on +46701239876"},
        dedupe_key="x",
        body_hash="x",
    )
    balance, pending = account(anna)
    assert balance > 0 and pending > 0

    response = erase(api, anna, key="erase-1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["member_number"] == anna.member_number and body["status"] == "erased"
    assert body["erased_at"]

    assert account(anna) == (0, 0)
    closing = LedgerEntry.objects.filter(member=anna, kind="adjust", reason="erased")
    assert sorted(e.points for e in closing) == sorted([-balance, -pending])
    assert not Lot.objects.filter(member=anna, remaining__gt=0).exists()
    assert_ledger_consistent()
    row = Member.objects.get(pk=anna.pk)
    assert (row.email, row.phone, row.first_name, row.last_name, row.birth_date) == (
        None,
        None,
        "",
        "",
        None,
    )
    assert row.status == "erased"
    assert set(Card.objects.filter(member=anna).values_list("status", flat=True)) == {"blocked"}
    assert list(ActivityEvent.objects.filter(member=anna).values_list("properties", flat=True)) == [
        {}
    ]
    # The books stay.
    assert anna.purchases.filter(receipt_id=purchase["receipt_id"]).exists()
    event = OutboxEvent.objects.get(topic="member.erased", member_id=anna.pk)
    assert event.payload["member_number"] == anna.member_number

    # No lookup by the old identifiers finds anyone.
    for kind, value in (
        ("email", "anna.privacy@example.se"),
        ("phone", "+46701239876"),
        ("card", card),
    ):
        assert_problem(api.get("/api/v1/members/lookup", {kind: value}), 404, "not_found")
    # GET answers the erased member with null personal fields.
    got = api.get(url(anna))
    assert got.status_code == 200, got.content
    member = got.json()
    assert member["status"] == "erased" and member["cards"] == []
    for field in ("first_name", "last_name", "email", "phone", "birth_date"):
        assert member[field] is None, field
    assert member["points"]["balance"] == 0 and member["points"]["pending"] == 0
    # The consents end with the member, in their history.
    consents = api.get(url(anna, "/consents")).json()
    assert consents["current"] == {
        "marketing_email": False,
        "marketing_sms": False,
        "profiling": False,
    }
    assert {(h["consent"], h["granted"]) for h in consents["history"][:2]} == {
        ("marketing_email", False),
        ("profiling", False),
    }
    # The export still answers, without personal data.
    text = json.dumps(export(api, anna))
    for personal in ("anna.privacy@example.se", "46701239876", "Anna", "Lind", "1990-01-02"):
        assert personal not in text, personal


def test_a_second_erase_replays_or_answers_the_same_state(api, anna):
    first = erase(api, anna, key="erase-once")
    again = erase(api, anna, key="erase-once")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = erase(api, anna, key="erase-twice")
    assert other.status_code == 200 and "Idempotent-Replayed" not in other
    assert other.json() == first.json()
    assert LedgerEntry.objects.filter(member=anna, reason="erased").count() == 1
    assert OutboxEvent.objects.filter(topic="member.erased", member_id=anna.pk).count() == 1
    assert_ledger_consistent()


def test_a_debt_is_closed_to_zero(api, make_member):
    member = make_member(market="SE", points=100)
    points_adjust(member=member, points=-250, reason="test debt", actor=SYSTEM)
    assert account(member) == (-150, 0)
    assert erase(api, member).status_code == 200
    assert account(member) == (0, 0)
    assert LedgerEntry.objects.get(member=member, reason="erased").points == 150
    assert_ledger_consistent()


def test_a_held_redemption_is_released_before_closing(api, anna):
    held = api.post(
        "/api/v1/redemptions",
        {
            "member": {"member_number": anna.member_number},
            "points": 100,
            "store_code": "SE-001",
            "capture": False,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="hold-1",
    )
    assert held.status_code == 201, held.content
    assert erase(api, anna).status_code == 200
    assert account(anna) == (0, 0)
    assert_ledger_consistent()
    redemption_id = held.json()["redemption_id"]
    capture = api.post(f"/api/v1/redemptions/{redemption_id}/capture", HTTP_IDEMPOTENCY_KEY="cap-1")
    assert_problem(capture, 422, "member_inactive")


def test_the_same_email_and_phone_enrol_again(api, anna):
    assert erase(api, anna).status_code == 200
    response = api.post(
        "/api/v1/members",
        {"market": "SE", "email": "anna.privacy@example.se", "phone": "+46701239876"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["member_number"] != anna.member_number
    found = api.get("/api/v1/members/lookup", {"email": "anna.privacy@example.se"})
    assert found.status_code == 200 and found.json()["member_number"] != anna.member_number


def test_every_write_to_an_erased_member_answers_member_inactive(api, anna):
    purchase = buy(anna, "200.00")
    card = anna.cards.get().number
    make_reward("privacy-cap", points_cost=10)
    assert erase(api, anna).status_code == 200
    ref = {"member_number": anna.member_number}

    def key() -> dict[str, str]:
        return {"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex}

    now = (timezone.now() - timedelta(minutes=1)).isoformat()
    lines = [{"sku": "SKU-1", "amount": "50.00"}]
    writes = [
        api.post(
            "/api/v1/purchases",
            {
                "member": ref,
                "store_code": "SE-001",
                "receipt_id": "after-erase",
                "occurred_at": now,
                "currency": "SEK",
                "total": "50.00",
                "lines": lines,
            },
            format="json",
        ),
        api.post(
            "/api/v1/returns",
            {
                "store_code": "SE-001",
                "receipt_id": "RET-after-erase",
                "original": {"store_code": "SE-001", "receipt_id": purchase["receipt_id"]},
                "occurred_at": now,
                "currency": "SEK",
                "total": "50.00",
                "lines": lines,
            },
            format="json",
        ),
        api.post(
            "/api/v1/redemptions",
            {"member": ref, "points": 1, "store_code": "SE-001"},
            format="json",
            **key(),
        ),
        api.post(url(anna, "/adjustments"), {"points": 5, "reason": "x"}, format="json", **key()),
        use(api, anna, "coffee"),
        claim(api, anna, "privacy-cap"),
        api.post(
            "/api/v1/events",
            {"member": ref, "type": "profile_completed", "occurred_at": now, "properties": {}},
            format="json",
        ),
        api.patch(url(anna), {"first_name": "Back"}, format="json"),
        api.post(url(anna, "/cards"), **key()),
        api.delete(url(anna, f"/cards/{card}")),
    ]
    for response in writes:
        assert_problem(response, 422, "member_inactive")
    assert_ledger_consistent()


def test_erase_needs_a_key_the_scope_and_the_market(make_api, anna):
    no_key = make_api().post(url(anna, "/erase"))
    assert_problem(no_key, 400, "idempotency_key_required")
    assert_problem(erase(make_api(scopes=["members:write"]), anna), 403, "permission_denied")
    assert_problem(erase(make_api(markets=["NO"]), anna), 404, "not_found")
    assert Member.objects.get(pk=anna.pk).status == "active"


def test_pending_points_of_several_purchases_are_all_closed(api, make_member):
    set_window("SE", 30)
    member = make_member(market="SE")
    buy(member, "100.00")
    buy(member, "250.00")
    assert account(member)[1] > 0
    assert erase(api, member).status_code == 200
    assert account(member) == (0, 0)
    assert_ledger_consistent()
    assert member.purchases.count() == 2  # the purchases are kept


def test_answers_kept_for_replays_lose_the_personal_data(api):
    body = {
        "market": "SE",
        "email": "replay@example.se",
        "first_name": "Rita",
        "phone": "+46701230077",
    }
    enrolled = api.post("/api/v1/members", body, format="json", HTTP_IDEMPOTENCY_KEY="enrol-r")
    assert enrolled.status_code == 201, enrolled.content
    member = Member.objects.get(member_number=enrolled.json()["member_number"])
    event = {
        "member": {"member_number": member.member_number},
        "type": "survey_answered",
        "occurred_at": (timezone.now() - timedelta(minutes=1)).isoformat(),
        "properties": {"comment": "Rita here"},
    }
    posted = api.post("/api/v1/events", event, format="json", HTTP_IDEMPOTENCY_KEY="event-r")
    assert posted.status_code == 201, posted.content
    assert erase(api, member).status_code == 200

    replayed = api.post("/api/v1/members", body, format="json", HTTP_IDEMPOTENCY_KEY="enrol-r")
    assert replayed["Idempotent-Replayed"] == "true"
    again = api.post("/api/v1/events", event, format="json", HTTP_IDEMPOTENCY_KEY="event-r")
    assert again["Idempotent-Replayed"] == "true"
    for response in (replayed, again):
        text = response.content.decode()
        for personal in ("replay@example.se", "Rita", "46701230077"):
            assert personal not in text, (personal, text)
    assert replayed.json()["status"] == "erased"
    assert ActivityEvent.objects.get(member=member).response.get("properties") == {}


def test_a_call_that_checked_the_member_before_the_erasure_cannot_book_after_it(api, anna):
    """The race of a purchase with an erasure: the purchase found the member
    active, then the erasure committed while it waited for the account. Under
    the account lock it finds the account closed and books nothing."""
    assert erase(api, anna).status_code == 200
    anna.status = Member.Status.ACTIVE  # what the purchase had read before the erasure
    entries = LedgerEntry.objects.filter(member=anna).count()
    with pytest.raises(MemberInactive):
        purchase_book(
            member=anna,
            receipt_id="R-RACE",
            occurred_at=timezone.now(),
            lines=[Line(sku="A", amount=Decimal("100.00"), category="tools")],
            now=timezone.now(),
        )
    assert LedgerEntry.objects.filter(member=anna).count() == entries
    assert PointsAccount.objects.get(member=anna).closed_at is not None
    assert_ledger_consistent()
