"""Real threads against real Postgres: nothing overspends, nothing books twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from rest_framework.test import APIClient

from loyalty.models import LedgerEntry, PointsAccount, Purchase, Redemption
from tests.helpers import account, in_parallel, purchase_body, return_body

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def check_ledger() -> None:
    # Raises SystemExit(1) on any discrepancy.
    call_command("check_ledger")


def test_parallel_redemptions_never_overspend(api, make_member):
    member = make_member(points=100)

    def work(i: int, client: APIClient) -> tuple[int, str | None]:
        response = client.post(
            "/api/v1/redemptions",
            {
                "member": {"member_number": member.member_number},
                "points": 10,
                "store_code": "SE-001",
            },
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"par-{i}",
        )
        return response.status_code, response.json().get("code")

    results = in_parallel(50, work, api.raw_key)
    counts = Counter(results)
    assert counts[(201, None)] == 10, counts
    assert counts[(422, "insufficient_points")] == 40, counts
    assert account(member) == (0, 0)
    assert Redemption.objects.filter(member=member).count() == 10
    assert (
        sum(
            LedgerEntry.objects.filter(member=member, kind="redeem").values_list(
                "points", flat=True
            )
        )
        == -100
    )
    check_ledger()


def test_parallel_purchases_on_one_member_all_land(api, make_member):
    member = make_member()

    def work(i: int, client: APIClient) -> int:
        response = client.post(
            "/api/v1/purchases",
            purchase_body(member.member_number, f"R-par-{i}", f"{i + 1}.00"),
            format="json",
        )
        return response.status_code

    statuses = in_parallel(50, work, api.raw_key)
    assert statuses == [201] * 50
    expected = sum(range(1, 51))
    assert account(member) == (0, expected)
    assert Purchase.objects.filter(member=member).count() == 50
    check_ledger()


def test_same_idempotency_key_in_parallel_books_once(api, make_member):
    member = make_member(points=1000)
    body = {"member": {"member_number": member.member_number}, "points": 10, "store_code": "SE-001"}

    def work(i: int, client: APIClient) -> tuple[int, str | None, str | None, Any]:
        response = client.post(
            "/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="same-key"
        )
        payload = response.json()
        return (
            response.status_code,
            payload.get("code"),
            response.get("Idempotent-Replayed"),
            payload.get("redemption_id"),
        )

    results = in_parallel(20, work, api.raw_key)
    booked = [r for r in results if r[0] == 201 and r[2] is None]
    replays = [r for r in results if r[0] == 201 and r[2] == "true"]
    in_progress = [r for r in results if r[0] == 409 and r[1] == "request_in_progress"]
    assert len(booked) == 1, results
    assert len(booked) + len(replays) + len(in_progress) == 20, results
    assert {r[3] for r in replays} <= {booked[0][3]}
    assert account(member) == (990, 0)
    assert Redemption.objects.filter(member=member).count() == 1
    # Once the first has finished, the key replays.
    again = api.post("/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="same-key")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json()["redemption_id"] == booked[0][3]
    check_ledger()


def test_same_receipt_in_parallel_books_once(api, make_member):
    member = make_member()
    body = purchase_body(member.member_number, "R-same", "250.00")

    def work(i: int, client: APIClient) -> tuple[int, str | None, Any]:
        response = client.post("/api/v1/purchases", body, format="json")
        return response.status_code, response.get("Idempotent-Replayed"), response.json()

    results = in_parallel(20, work, api.raw_key)
    assert [r[0] for r in results] == [201] * 20, results
    firsts = [r for r in results if r[1] is None]
    assert len(firsts) == 1, [r[:2] for r in results]
    assert all(r[2] == firsts[0][2] for r in results)
    assert account(member) == (0, 250)
    assert Purchase.objects.filter(member=member).count() == 1
    assert LedgerEntry.objects.filter(member=member).count() == 1
    check_ledger()


def test_same_return_receipt_in_parallel_reverses_once(api, make_member):
    member = make_member()
    api.post(
        "/api/v1/purchases", purchase_body(member.member_number, "R-ret", "200.00"), format="json"
    )
    body = return_body("R-ret", "RET-same", "50.00")

    def work(i: int, client: APIClient) -> tuple[int, Any]:
        response = client.post("/api/v1/returns", body, format="json")
        return response.status_code, response.json()

    results = in_parallel(20, work, api.raw_key)
    assert [r[0] for r in results] == [201] * 20, results
    assert all(r[1] == results[0][1] for r in results)
    assert account(member) == (0, 150)
    assert LedgerEntry.objects.filter(member=member, kind="return").count() == 1
    check_ledger()


def test_parallel_returns_never_add_up_to_more_than_the_purchase(api, make_member):
    member = make_member()
    api.post(
        "/api/v1/purchases", purchase_body(member.member_number, "R-many", "100.00"), format="json"
    )

    def work(i: int, client: APIClient) -> tuple[int, str | None]:
        response = client.post(
            "/api/v1/returns", return_body("R-many", f"RET-{i}", "10.00"), format="json"
        )
        return response.status_code, response.json().get("code")

    counts = Counter(in_parallel(20, work, api.raw_key))
    assert counts == {(201, None): 10, (422, "return_exceeds_purchase"): 10}, counts
    assert account(member) == (0, 0)
    purchase = Purchase.objects.get(receipt_id="R-many")
    assert purchase.points_reversed == 100 and purchase.returned_amount == purchase.total
    check_ledger()


def test_parallel_hold_capture_and_cancel_release_once(api, make_member):
    member = make_member(points=100)
    held = api.post(
        "/api/v1/redemptions",
        {
            "member": {"member_number": member.member_number},
            "points": 60,
            "store_code": "SE-001",
            "capture": False,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="hold",
    ).json()
    rid = held["redemption_id"]

    def work(i: int, client: APIClient) -> tuple[int, str]:
        action = "cancel" if i % 2 else "capture"
        response = client.post(f"/api/v1/redemptions/{rid}/{action}", format="json")
        return response.status_code, action

    results = in_parallel(20, work, api.raw_key)
    assert all(status in (200, 409) for status, _ in results), results
    status = Redemption.objects.get(pk=rid).status
    assert status in ("captured", "cancelled")
    # Whatever won, the points were given back at most once.
    assert account(member) == ((100, 0) if status == "cancelled" else (40, 0))
    assert LedgerEntry.objects.filter(member=member, kind="redeem_cancel").count() == (
        1 if status == "cancelled" else 0
    )
    check_ledger()


def _wait_for_lock_waiter(timeout: float = 10.0) -> None:
    """Until some backend of this database waits on a row lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError("no request ever waited on the lock")


def test_same_key_while_the_first_is_running_is_request_in_progress(api, make_member):
    member = make_member(points=100)
    body = {"member": {"member_number": member.member_number}, "points": 10, "store_code": "SE-001"}
    locked, release = threading.Event(), threading.Event()
    first: dict[str, Any] = {}

    def hold_account() -> None:  # a slow writer: keeps the member's account locked
        try:
            with transaction.atomic():
                PointsAccount.objects.select_for_update().get(member_id=member.pk)
                locked.set()
                release.wait(timeout=20)
        finally:
            connection.close()

    def first_request() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api.raw_key}")
            first["response"] = client.post(
                "/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="slow"
            )
        finally:
            connection.close()

    holder = threading.Thread(target=hold_account)
    holder.start()
    assert locked.wait(timeout=10)
    runner = threading.Thread(target=first_request)
    runner.start()
    try:
        _wait_for_lock_waiter()
        second = api.post("/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="slow")
        assert second.status_code == 409, second.content
        assert second["Content-Type"] == "application/problem+json"
        assert second.json()["code"] == "request_in_progress"
    finally:
        release.set()
        holder.join(timeout=20)
        runner.join(timeout=20)
    assert first["response"].status_code == 201, first["response"].content
    third = api.post("/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="slow")
    assert third.status_code == 201 and third["Idempotent-Replayed"] == "true"
    assert third.json() == first["response"].json()
    assert account(member) == (90, 0)
    check_ledger()


def test_check_ledger_fails_on_a_discrepancy(make_member):
    member = make_member(points=10)
    check_ledger()
    PointsAccount.objects.filter(member_id=member.pk).update(balance=11)
    with pytest.raises(SystemExit) as exc:
        check_ledger()
    assert exc.value.code == 1
