"""POST /api/v1/redemptions, /capture and /cancel: points as payment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from club.models import Market
from loyalty import services
from loyalty.ledger import expiry_for
from loyalty.models import LedgerEntry, Lot, LotMovement, Redemption
from tests.helpers import SYSTEM, account, assert_ledger_consistent, assert_problem, purchase_body

pytestmark = pytest.mark.django_db

URL = "/api/v1/redemptions"


def redeem(api, member, points, *, key, capture=True, **extra_body):
    body = {
        "member": {"member_number": member.member_number},
        "points": points,
        "store_code": "SE-001",
        "capture": capture,
        **extra_body,
    }
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post(URL, body, format="json", **headers)


def act(api, redemption_id, action, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post(f"{URL}/{redemption_id}/{action}", format="json", **headers)


def test_captured_redemption_spends_at_once(api, make_member):
    member = make_member(points=1000)
    response = redeem(api, member, 500, key="r-1", reference="order-8841")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "captured"
    assert body["points"] == 500
    assert body["value"] == {"amount": "5.00", "currency": "SEK"}
    assert body["expires_at"] is None
    assert body["reference"] == "order-8841"
    assert body["member"]["member_number"] == member.member_number
    assert body["member"]["points"]["balance"] == 500
    assert account(member) == (500, 0)
    entry = LedgerEntry.objects.get(member=member, kind="redeem")
    assert entry.points == -500 and entry.reference == "order-8841"
    assert Redemption.objects.get(pk=body["redemption_id"]).status == "captured"
    assert_ledger_consistent()


def test_hold_leaves_the_balance_now_and_capture_keeps_it_spent(api, make_member):
    member = make_member(points=1000)
    before = timezone.now()
    response = redeem(api, member, 300, key="h-1", capture=False)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "held"
    assert body["member"]["points"]["balance"] == 700
    expires_at = Redemption.objects.get(pk=body["redemption_id"]).expires_at
    assert before + timedelta(minutes=15) <= expires_at <= timezone.now() + timedelta(minutes=15)
    assert body["expires_at"] is not None
    captured = act(api, body["redemption_id"], "capture")
    assert captured.status_code == 200, captured.content
    assert captured.json()["status"] == "captured"
    assert captured.json()["member"]["points"]["balance"] == 700
    assert account(member) == (700, 0)
    # Capturing twice changes nothing.
    again = act(api, body["redemption_id"], "capture")
    assert again.status_code == 200 and again.json()["status"] == "captured"
    assert account(member) == (700, 0)
    assert_ledger_consistent()


def test_hold_time_follows_the_market(api, make_member):
    Market.objects.filter(code="SE").update(hold_minutes=3)
    member = make_member(points=100)
    body = redeem(api, member, 10, key="h-m", capture=False).json()
    redemption = Redemption.objects.get(pk=body["redemption_id"])
    assert timedelta(minutes=2) < redemption.expires_at - timezone.now() <= timedelta(minutes=3)


def test_cancel_of_a_hold_gives_the_points_back(api, make_member):
    member = make_member(points=1000)
    body = redeem(api, member, 300, key="h-2", capture=False).json()
    cancelled = act(api, body["redemption_id"], "cancel")
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["member"]["points"]["balance"] == 1000
    assert account(member) == (1000, 0)
    assert LedgerEntry.objects.get(member=member, kind="redeem_cancel").points == 300
    # A cancelled hold cannot be captured.
    assert_problem(act(api, body["redemption_id"], "capture"), 409, "hold_expired")
    # Cancelling again changes nothing.
    assert act(api, body["redemption_id"], "cancel").status_code == 200
    assert account(member) == (1000, 0)
    assert LedgerEntry.objects.filter(member=member, kind="redeem_cancel").count() == 1
    assert_ledger_consistent()


def test_cancel_of_a_captured_redemption_gives_the_points_back_to_their_lots(api, make_member):
    member = make_member(points=1000)
    body = redeem(api, member, 1000, key="c-1").json()
    assert Lot.objects.get(member=member).remaining == 0
    cancelled = act(api, body["redemption_id"], "cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert account(member) == (1000, 0)
    assert Lot.objects.get(member=member).remaining == 1000
    assert_ledger_consistent()


def test_capture_of_an_expired_hold_is_refused_and_the_points_come_back(api, make_member):
    member = make_member(points=1000)
    body = redeem(api, member, 400, key="e-1", capture=False).json()
    Redemption.objects.filter(pk=body["redemption_id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = act(api, body["redemption_id"], "capture")
    assert_problem(response, 409, "hold_expired")
    assert account(member) == (1000, 0)
    assert Redemption.objects.get(pk=body["redemption_id"]).status == "expired"
    # And it stays refused.
    assert_problem(act(api, body["redemption_id"], "capture"), 409, "hold_expired")
    assert account(member) == (1000, 0)
    assert_ledger_consistent()


def test_capture_of_an_expired_hold_under_an_idempotency_key_gives_the_points_back(
    api, make_member
):
    member = make_member(points=1000)
    held = services.points_redeem(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        points=400,
        store_code="SE-001",
        capture=False,
        now=timezone.now() - timedelta(minutes=16),
    )
    response = act(api, held["redemption_id"], "capture", key="cap-expired")
    assert_problem(response, 409, "hold_expired")
    assert account(member) == (1000, 0)
    assert Redemption.objects.get(pk=held["redemption_id"]).status == "expired"
    again = act(api, held["redemption_id"], "capture", key="cap-expired")
    assert_problem(again, 409, "hold_expired")
    assert account(member) == (1000, 0)
    assert_ledger_consistent()


def test_capture_service_with_now_after_the_hold_time(make_member):
    member = make_member(points=100)
    held = services.points_redeem(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        points=60,
        store_code="SE-001",
        capture=False,
    )
    with pytest.raises(services.HoldExpired):
        services.redemption_capture(
            actor=SYSTEM,
            redemption_id=held["redemption_id"],
            now=timezone.now() + timedelta(minutes=16),
        )
    assert account(member) == (100, 0)
    assert_ledger_consistent()


def test_above_the_balance_is_insufficient_and_changes_nothing(api, make_member):
    member = make_member(points=100)
    response = redeem(api, member, 101, key="i-1")
    body = assert_problem(response, 422, "insufficient_points")
    assert "100" in body["detail"]
    assert account(member) == (100, 0)
    assert not Redemption.objects.exists()
    assert not LedgerEntry.objects.filter(kind="redeem").exists()


def test_pending_points_cannot_be_redeemed(api, make_member):
    member = make_member(points=10)
    api.post(
        "/api/v1/purchases", purchase_body(member.member_number, "R-pend", "500.00"), format="json"
    )
    assert account(member) == (10, 500)
    assert_problem(redeem(api, member, 11, key="i-2"), 422, "insufficient_points")
    assert redeem(api, member, 10, key="i-3").status_code == 201
    assert account(member) == (0, 500)


def test_held_points_cannot_be_redeemed_twice(api, make_member):
    member = make_member(points=100)
    assert redeem(api, member, 80, key="d-1", capture=False).status_code == 201
    assert_problem(redeem(api, member, 21, key="d-2"), 422, "insufficient_points")
    assert redeem(api, member, 20, key="d-3").status_code == 201
    assert account(member) == (0, 0)


def test_redemption_requires_an_idempotency_key(api, make_member):
    member = make_member(points=100)
    assert_problem(redeem(api, member, 10, key=None), 400, "idempotency_key_required")
    assert account(member) == (100, 0)
    assert not Redemption.objects.exists()


def test_redemption_replays_under_the_same_key(api, make_member):
    member = make_member(points=100)
    first = redeem(api, member, 10, key="rep-1")
    again = redeem(api, member, 10, key="rep-1")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert account(member) == (90, 0)
    assert Redemption.objects.count() == 1
    reused = redeem(api, member, 11, key="rep-1")
    assert_problem(reused, 422, "idempotency_key_reused")
    assert account(member) == (90, 0)


def test_keys_are_scoped_to_the_api_client(make_api, make_member):
    member = make_member(points=100)
    one, two = make_api(), make_api()
    assert redeem(one, member, 10, key="shared").status_code == 201
    second = redeem(two, member, 10, key="shared")
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert account(member) == (80, 0)


def test_redeem_takes_from_the_lots_that_expire_first(make_member):
    member = make_member()
    now = timezone.now()
    # The later-expiring lot is created first: order by expiry, not by id.
    services.points_adjust(actor=SYSTEM, member=member, points=100, reason="late", now=now)
    services.points_adjust(
        actor=SYSTEM, member=member, points=100, reason="early", now=now - timedelta(days=62)
    )
    late = Lot.objects.get(entry__reason="late")
    early = Lot.objects.get(entry__reason="early")
    assert early.expires_on < late.expires_on and early.pk > late.pk
    services.points_redeem(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        points=150,
        store_code="SE-001",
    )
    early.refresh_from_db()
    late.refresh_from_db()
    assert (early.remaining, late.remaining) == (0, 50)
    spend = LotMovement.objects.filter(entry__kind="redeem").order_by("id")
    assert [(m.lot_id, m.points) for m in spend] == [(early.pk, -100), (late.pk, -50)]
    assert_ledger_consistent()


def test_expired_lots_cannot_be_redeemed(make_member):
    member = make_member()
    long_ago = timezone.now() - timedelta(days=800)
    services.points_adjust(actor=SYSTEM, member=member, points=100, reason="old", now=long_ago)
    market = member.market
    assert expiry_for(market, long_ago.date()) < timezone.now().date()
    with pytest.raises(services.InsufficientPoints):
        services.points_redeem(
            actor=SYSTEM,
            member_ref={"member_number": member.member_number},
            points=1,
            store_code="SE-001",
        )
    # The refusal rolled back everything, the expiry included; the next
    # writer books it.
    services.points_adjust(actor=SYSTEM, member=member, points=5, reason="new")
    assert account(member) == (5, 0)
    assert LedgerEntry.objects.get(member=member, kind="expire").points == -100
    assert_ledger_consistent()


@pytest.mark.parametrize(
    "change",
    [
        {"points": 0},
        {"points": -5},
        {"points": 10_000_001},
        {"points": "many"},
        {"points": 1.5},
        {"capture": "perhaps"},
        {"discount": 10},
        {"member": {}},
    ],
)
def test_invalid_redemptions_are_validation_errors(api, make_member, change):
    member = make_member(points=100)
    body = {
        "member": {"member_number": member.member_number},
        "points": 10,
        "store_code": "SE-001",
        **change,
    }
    response = api.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="bad")
    assert_problem(response, 400, "validation_error")
    assert account(member) == (100, 0)
    assert not Redemption.objects.exists()


def test_missing_points_is_a_validation_error(api, make_member):
    member = make_member(points=100)
    response = api.post(
        URL,
        {"member": {"member_number": member.member_number}, "store_code": "SE-001"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="m",
    )
    problem = assert_problem(response, 400, "validation_error")
    assert "points" in problem["errors"]


def test_unknown_and_foreign_members_are_not_found(api, make_api, make_member):
    member = make_member(points=100)
    nobody = api.post(
        URL,
        {"member": {"member_number": "1234567897"}, "points": 1, "store_code": "SE-001"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="n-1",
    )
    assert_problem(nobody, 404, "not_found")
    denmark = make_api(markets=["DK"])
    assert_problem(redeem(denmark, member, 1, key="n-2"), 404, "not_found")
    assert account(member) == (100, 0)


def test_capture_and_cancel_of_a_foreign_or_unknown_redemption_are_not_found(
    api, make_api, make_member
):
    member = make_member(points=100)
    held = redeem(api, member, 10, key="f-1", capture=False).json()
    finland = make_api(markets=["FI"])
    assert_problem(act(finland, held["redemption_id"], "capture"), 404, "not_found")
    assert_problem(act(finland, held["redemption_id"], "cancel"), 404, "not_found")
    assert_problem(act(api, "not-a-uuid", "capture"), 404, "not_found")
    assert_problem(act(api, "7b0c8f5e-0000-4000-8000-000000000000", "cancel"), 404, "not_found")
    assert Redemption.objects.get(pk=held["redemption_id"]).status == "held"
    assert account(member) == (90, 0)


def test_redemption_at_an_unknown_store_or_for_an_inactive_member(api, make_member):
    member = make_member(points=100)
    assert_problem(redeem(api, member, 10, key="s-1", store_code="NO-001"), 422, "unknown_store")
    type(member).objects.filter(pk=member.pk).update(status="suspended")
    assert_problem(redeem(api, member, 10, key="s-2"), 422, "member_inactive")
    assert account(member) == (100, 0)
    assert not Redemption.objects.exists()


def test_redemption_needs_the_redeem_scope(make_api, make_member):
    member = make_member(points=100)
    writer = make_api(scopes=["purchases:write"])
    assert_problem(redeem(writer, member, 10, key="sc"), 403, "permission_denied")
    assert account(member) == (100, 0)
