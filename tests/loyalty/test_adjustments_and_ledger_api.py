"""POST /members/{n}/adjustments and GET /members/{n}/ledger."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone

from club.dates import today_for
from loyalty import services
from loyalty.ledger import expiry_for
from loyalty.models import LedgerEntry, Lot, LotMovement
from tests.helpers import SYSTEM, account, assert_ledger_consistent, assert_problem, purchase_body

pytestmark = pytest.mark.django_db


def adjust(api, member, body, key="adj"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post(
        f"/api/v1/members/{member.member_number}/adjustments", body, format="json", **headers
    )


def ledger(api, member, **params):
    return api.get(f"/api/v1/members/{member.member_number}/ledger", params)


# -- adjustments ------------------------------------------------------------


def test_positive_adjustment_is_available_at_once_and_expires_like_earned_points(api, make_member):
    member = make_member()
    response = adjust(api, member, {"points": 250, "reason": "goodwill"})
    assert response.status_code == 201, response.content
    body = response.json()
    market = member.market
    expires = expiry_for(market, today_for(market))
    assert body["entry"]["kind"] == "adjust"
    assert body["entry"]["points"] == 250
    assert body["entry"]["expires_on"] == expires.isoformat()
    assert body["member"]["points"] == {
        "balance": 250,
        "pending": 0,
        "expiring": {"points": 250, "on": expires.isoformat()},
    }
    assert account(member) == (250, 0)
    lot = Lot.objects.get(member=member)
    assert lot.matured and lot.remaining == 250 and lot.expires_on == expires
    entry = LedgerEntry.objects.get(pk=body["entry"]["id"])
    assert entry.reason == "goodwill"
    assert entry.api_client_id == api.api_client.id
    assert_ledger_consistent()


def test_negative_adjustment_takes_from_the_lots_that_expire_first(api, make_member):
    member = make_member()
    now = timezone.now()
    services.points_adjust(actor=SYSTEM, member=member, points=100, reason="late", now=now)
    services.points_adjust(
        actor=SYSTEM, member=member, points=100, reason="early", now=now - timedelta(days=62)
    )
    early = Lot.objects.get(entry__reason="early")
    late = Lot.objects.get(entry__reason="late")
    assert early.expires_on < late.expires_on
    response = adjust(api, member, {"points": -130, "reason": "correction"})
    assert response.status_code == 201, response.content
    assert response.json()["member"]["points"]["balance"] == 70
    early.refresh_from_db()
    late.refresh_from_db()
    assert (early.remaining, late.remaining) == (0, 70)
    moves = LotMovement.objects.filter(entry_id=response.json()["entry"]["id"]).order_by("id")
    assert [(m.lot_id, m.points) for m in moves] == [(early.pk, -100), (late.pk, -30)]
    assert response.json()["entry"]["expires_on"] is None
    assert_ledger_consistent()


def test_negative_adjustment_beyond_the_balance_leaves_a_debt(api, make_member):
    member = make_member(points=50)
    response = adjust(api, member, {"points": -80, "reason": "clawback"})
    assert response.status_code == 201, response.content
    assert account(member) == (-30, 0)
    assert_ledger_consistent()
    assert (
        adjust(api, member, {"points": 100, "reason": "goodwill"}, key="adj-2").status_code == 201
    )
    assert account(member) == (70, 0)
    assert_ledger_consistent()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"points": 100}, "reason"),
        ({"points": 100, "reason": ""}, "reason"),
        ({"reason": "x"}, "points"),
        ({"points": 0, "reason": "x"}, "points"),
        ({"points": 10_000_001, "reason": "x"}, "points"),
        ({"points": -10_000_001, "reason": "x"}, "points"),
        ({"points": "lots", "reason": "x"}, "points"),
        ({"points": 10, "reason": "x", "kind": "bonus"}, "kind"),
        ({"points": 10, "reason": "r" * 256}, "reason"),
    ],
)
def test_invalid_adjustments_are_validation_errors(api, make_member, body, field):
    member = make_member(points=10)
    problem = assert_problem(adjust(api, member, body), 400, "validation_error")
    assert field in problem["errors"], problem
    assert account(member) == (10, 0)
    assert LedgerEntry.objects.filter(member=member).count() == 1


def test_whitespace_reason_is_refused_by_the_service(make_member):
    member = make_member()
    with pytest.raises(services.ValidationFailed):
        services.points_adjust(actor=SYSTEM, member=member, points=10, reason="   ")
    assert account(member) == (0, 0)


def test_adjustment_requires_an_idempotency_key_and_replays(api, make_member):
    member = make_member()
    assert_problem(
        adjust(api, member, {"points": 10, "reason": "x"}, key=None),
        400,
        "idempotency_key_required",
    )
    assert account(member) == (0, 0)
    first = adjust(api, member, {"points": 10, "reason": "x"}, key="once")
    again = adjust(api, member, {"points": 10, "reason": "x"}, key="once")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert account(member) == (10, 0)
    reused = adjust(api, member, {"points": 11, "reason": "x"}, key="once")
    assert_problem(reused, 422, "idempotency_key_reused")
    assert account(member) == (10, 0)


def test_adjustment_of_unknown_or_foreign_member_is_not_found(api, make_api, make_member, demo):
    member = make_member()
    response = api.post(
        "/api/v1/members/1234567897/adjustments",
        {"points": 1, "reason": "x"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="nf",
    )
    assert_problem(response, 404, "not_found")
    norway = make_api(markets=["NO"])
    assert_problem(adjust(norway, member, {"points": 1, "reason": "x"}), 404, "not_found")
    assert account(member) == (0, 0)


def test_adjustment_needs_the_adjust_scope(make_api, make_member):
    member = make_member()
    redeemer = make_api(scopes=["points:redeem", "members:read"])
    assert_problem(adjust(redeemer, member, {"points": 1, "reason": "x"}), 403, "permission_denied")
    assert account(member) == (0, 0)


# -- ledger -----------------------------------------------------------------


def test_ledger_lists_entries_newest_first_with_the_contract_fields(api, make_member):
    member = make_member(points=100)
    api.post(
        "/api/v1/purchases", purchase_body(member.member_number, "R-l", "40.00"), format="json"
    )
    services.points_redeem(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        points=30,
        store_code="SE-001",
        reference="order-1",
    )
    response = ledger(api, member)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["next"] is None
    kinds = [row["kind"] for row in body["results"]]
    assert kinds == ["redeem", "earn", "adjust"]
    assert [row["points"] for row in body["results"]] == [-30, 40, 100]
    ids = [row["id"] for row in body["results"]]
    assert ids == sorted(ids, reverse=True)
    assert set(body["results"][0]) == {
        "id",
        "kind",
        "points",
        "created_at",
        "reference",
        "expires_on",
    }
    assert body["results"][0]["reference"] == "order-1"
    assert body["results"][1]["reference"] == "R-l"
    assert body["results"][1]["expires_on"] is not None


def test_ledger_is_cursor_paginated(api, make_member):
    member = make_member()
    for n in range(7):
        services.points_adjust(actor=SYSTEM, member=member, points=n + 1, reason=f"r{n}")
    seen = []
    response = ledger(api, member, page_size=3)
    pages = 0
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        pages += 1
        assert len(body["results"]) <= 3
        seen.extend(row["points"] for row in body["results"])
        if body["next"] is None:
            break
        link = urlparse(body["next"])
        assert link.path == f"/api/v1/members/{member.member_number}/ledger"
        assert parse_qs(link.query)["page_size"] == ["3"]
        response = api.get(f"{link.path}?{link.query}")
    assert pages == 3
    assert seen == [7, 6, 5, 4, 3, 2, 1]


def test_ledger_page_size_at_most_200(api, make_member):
    member = make_member(points=1)
    assert ledger(api, member, page_size=200).status_code == 200
    for bad in ("201", "0", "-1", "ten"):
        problem = assert_problem(ledger(api, member, page_size=bad), 400, "validation_error")
        assert "page_size" in problem["errors"]


def test_ledger_default_page_and_full_page_of_200(api, make_member):
    member = make_member()
    for n in range(205):
        LedgerEntry.objects.create(member=member, kind="adjust", points=0, reference=f"n{n}")
    first = ledger(api, member, page_size=200).json()
    assert len(first["results"]) == 200
    assert first["next"] is not None
    rest = api.get(first["next"]).json()
    assert len(rest["results"]) == 5 and rest["next"] is None
    default = ledger(api, member).json()
    assert len(default["results"]) == 50


def test_ledger_invalid_cursor_is_a_validation_error(api, make_member):
    member = make_member(points=1)
    assert_problem(ledger(api, member, cursor="!!not-a-cursor!!"), 400, "validation_error")


def test_ledger_of_unknown_or_foreign_member_is_not_found(api, make_api, make_member, demo):
    member = make_member(points=1)
    assert_problem(api.get("/api/v1/members/1234567897/ledger"), 404, "not_found")
    assert_problem(ledger(make_api(markets=["FI"]), member), 404, "not_found")
    assert_problem(ledger(make_api(scopes=["purchases:write"]), member), 403, "permission_denied")
