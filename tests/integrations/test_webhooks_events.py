"""Each event of the contract is written by its action, in its transaction,
with the contract's `data` (members named by number, no other personal data)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from checkout.services import member_enrol
from core.models import OutboxEvent
from integrations.webhooks import EVENT_TYPES
from loyalty import lifecycle
from loyalty.models import Lot
from loyalty.services import points_redeem, redemption_cancel, redemption_capture
from members.services import member_update
from tests.helpers import SYSTEM, buy, claim, give_back, redeem, use

pytestmark = pytest.mark.django_db

PERSONAL = ("email", "phone", "first_name", "last_name", "birth_date", "name")


def events(member, topic):
    return list(OutboxEvent.objects.filter(member_id=member.pk, topic=topic).order_by("id"))


def data(member, topic):
    [event] = events(member, topic)
    return event.payload


def no_personal_data(payload, member):
    assert not set(payload) & set(PERSONAL), payload
    text = str(payload)
    for value in (member.email, member.phone, member.first_name, member.last_name):
        if value:
            assert value not in text, (value, payload)


def test_member_enrolled():
    member = member_enrol(
        actor=SYSTEM, market_code="SE", email="anna@example.com", first_name="Anna", channel="web"
    )
    payload = data(member, "member.enrolled")
    assert payload == {"member_number": member.member_number, "market": "SE", "channel": "web"}
    no_personal_data(payload, member)


def test_member_updated_names_the_fields_not_their_values(make_member):
    member = make_member(email="old@example.com", first_name="Old")
    member_update(
        member=member,
        changes={
            "first_name": "New",
            "email": "new@example.com",
            "consents": {"marketing_sms": True},
        },
        actor=SYSTEM,
    )
    payload = data(member, "member.updated")
    assert payload["member_number"] == member.member_number
    assert set(payload["fields"]) == {"first_name", "email", "marketing_sms"}
    assert "New" not in str(payload) and "new@example.com" not in str(payload)
    # Nothing changed, nothing told.
    member.refresh_from_db()
    member_update(member=member, changes={"first_name": "New"}, actor=SYSTEM)
    assert len(events(member, "member.updated")) == 1


def test_points_earned_and_returned(make_member):
    member = make_member()
    body = buy(member, "200.00")
    earned = data(member, "points.earned")
    assert set(earned) == {
        "member_number",
        "purchase_id",
        "receipt_id",
        "store_code",
        "points",
        "status",
        "available_on",
    }
    assert earned["points"] == body["points_earned"] and earned["status"] == "pending"
    back = give_back(body, "100.00")
    returned = data(member, "points.returned")
    assert returned == {
        "member_number": member.member_number,
        "purchase_id": body["purchase_id"],
        "return_id": back["return_id"],
        "points": back["points_reversed"],
    }


def test_points_redeemed_tells_each_status(make_member):
    member = make_member(points=500)
    ref = {"member_number": member.member_number}
    held = points_redeem(
        actor=SYSTEM, member_ref=ref, points=100, store_code="SE-001", capture=False
    )
    redemption_capture(actor=SYSTEM, redemption_id=held["redemption_id"])
    redemption_cancel(actor=SYSTEM, redemption_id=held["redemption_id"])
    points_redeem(actor=SYSTEM, member_ref=ref, points=50, store_code="SE-001")
    told = [e.payload for e in events(member, "points.redeemed")]
    assert [(p["status"], p["points"]) for p in told] == [
        ("held", 100),
        ("captured", 100),
        ("cancelled", 100),
        ("captured", 50),
    ]
    assert set(told[0]) == {"member_number", "redemption_id", "points", "status"}
    assert told[0]["redemption_id"] == held["redemption_id"]


def test_points_expiring_soon_and_expired(make_member):
    member = make_member(points=300)
    today = timezone.localdate()
    Lot.objects.filter(member=member).update(expires_on=today + timedelta(days=10))
    lifecycle.points_expiry_notices(as_of=timezone.now())
    soon = data(member, "points.expiring_soon")
    assert {"member_number", "points", "expires_on"} <= set(soon)
    assert soon["points"] == 300 and soon["expires_on"] == str(today + timedelta(days=10))

    Lot.objects.filter(member=member).update(expires_on=today - timedelta(days=3))
    lifecycle.points_expire(as_of=timezone.now())
    expired = data(member, "points.expired")
    assert {"member_number", "points"} <= set(expired)
    assert (expired["member_number"], expired["points"]) == (member.member_number, 300)
    lifecycle.points_expire(as_of=timezone.now())  # once
    assert len(events(member, "points.expired")) == 1


def test_tier_changed(make_member):
    member = make_member()
    buy(member, "5000.00")
    payload = data(member, "tier.changed")
    assert {"member_number", "from", "to", "valid_until", "cause"} <= set(payload)
    assert (payload["from"], payload["to"]) == ("member", "silver")


def test_vouchers_and_benefits(make_api, make_member, silver):
    api = make_api()
    member = make_member(points=500)
    voucher = claim(api, member, "voucher-50").json()
    assert data(member, "voucher.issued")["member_number"] == member.member_number
    assert redeem(api, voucher["code"]).status_code == 200
    assert data(member, "voucher.redeemed")["member_number"] == member.member_number
    assert use(api, silver, "coffee").status_code in (200, 201)
    assert data(silver, "benefit.used")["member_number"] == silver.member_number


def test_every_event_written_here_is_of_the_contract_and_names_its_member(make_member):
    member = make_member(points=500)
    body = buy(member, "5000.00")
    give_back(body, "10.00")
    written = OutboxEvent.objects.filter(member_id=member.pk)
    assert written.exists()
    for event in written:
        assert event.topic in EVENT_TYPES, event.topic
        assert event.payload["member_number"] == member.member_number
        no_personal_data(event.payload, member)
