"""The helpers the tests share: assertions, request bodies, threads, and
the small steps many tests take (buy, give back, claim, use). Fixtures live
in the conftest.py files."""

from __future__ import annotations

import csv
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from checkout.services import purchase_record, return_record
from club.models import Market, Tier
from core.actors import system_actor
from core.models import OutboxEvent
from journeys.models import MemberMission
from loyalty.models import (
    LedgerEntry,
    Lot,
    LotMovement,
    PointsAccount,
    Purchase,
    QualifyingMonth,
    TierChange,
)
from loyalty.selectors import ledger_discrepancies
from loyalty.services import Line
from members.models import Card, ConsentChange, Member
from rewards.models import Reward
from tests.contract import ContractClient

# The actor of the services the tests call directly: sees every market.
SYSTEM = system_actor("tests")
STOCKHOLM = ZoneInfo("Europe/Stockholm")


PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of API.md with this status and code."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"] == PROBLEM, response["Content-Type"]
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["type"] == "about:blank", body
    for field in ("title", "detail"):
        assert isinstance(body[field], str) and body[field], body
    assert "Traceback" not in response.content.decode(), body
    if "errors" in body:
        assert isinstance(body["errors"], dict) and body["errors"], body
        for messages in body["errors"].values():
            assert isinstance(messages, list) and all(isinstance(m, str) for m in messages), body
    return body


def in_parallel(n: int, work: Callable[[int, APIClient], Any], raw_key: str) -> list[Any]:
    """work(i, client) in n threads that start together, each with its own
    HTTP client and database connection, closed at the end."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        try:
            client = ContractClient()  # each answer checked against the OpenAPI document
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
            barrier.wait(timeout=30)
            return work(i, client)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def account(member: Any) -> tuple[int, int]:
    """(balance, pending) as the account caches them."""
    row = PointsAccount.objects.get(member_id=member.pk)
    return row.balance, row.pending


def assert_ledger_consistent() -> None:
    found = ledger_discrepancies()
    assert found == [], [str(d) for d in found]


def set_window(market_code: str, days: int) -> None:
    Market.objects.filter(code=market_code).update(return_window_days=days)


def return_body(
    original_receipt: str,
    receipt_id: str,
    amount: str,
    *,
    sku: str = "SKU-1",
    store: str = "SE-001",
    original_store: str = "SE-001",
    currency: str = "SEK",
    lines: list[dict[str, Any]] | None = None,
    total: str | None = None,
) -> dict[str, Any]:
    lines = lines if lines is not None else [{"sku": sku, "quantity": 1, "amount": amount}]
    return {
        "store_code": store,
        "receipt_id": receipt_id,
        "original": {"store_code": original_store, "receipt_id": original_receipt},
        "occurred_at": (timezone.now() - timedelta(seconds=30)).isoformat(),
        "currency": currency,
        "total": total if total is not None else amount,
        "lines": lines,
    }


def purchase_body(
    member_number: str,
    receipt_id: str,
    amount: str = "499.00",
    *,
    store: str = "SE-001",
    currency: str = "SEK",
    category: str = "tools",
    occurred_at: Any = None,
) -> dict[str, Any]:
    occurred = (occurred_at or timezone.now() - timedelta(minutes=1)).isoformat()
    return {
        "member": {"member_number": member_number},
        "store_code": store,
        "receipt_id": receipt_id,
        "channel": "store",
        "occurred_at": occurred,
        "currency": currency,
        "total": amount,
        "lines": [{"sku": "SKU-1", "category": category, "quantity": 1, "amount": amount}],
    }


def claim_url(member: Any) -> str:
    return f"/api/v1/members/{member.member_number}/rewards"


def claim(api: Any, member: Any, reward: str, key: str | None = None, **body: Any) -> Any:
    """POST .../rewards with a fresh Idempotency-Key unless given."""
    return api.post(
        claim_url(member),
        {"reward": reward, **body},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex,
    )


def redeem(api: Any, code: str, store: str = "SE-001", receipt: str = "R-1", **headers: Any) -> Any:
    return api.post(
        f"/api/v1/vouchers/{code}/redeem",
        {"store_code": store, "receipt_id": receipt},
        format="json",
        **headers,
    )


def balance(member: Any) -> int:
    return PointsAccount.objects.get(member_id=member.pk).balance


def make_reward(
    code: str = "test-reward",
    *,
    points_cost: int = 100,
    stock: int | None = None,
    value_text: str = "A test gift",
    validity_days: int = 30,
    **fields: Any,
) -> Reward:
    defaults: dict[str, Any] = {
        "name": code.replace("-", " ").title(),
        "points_cost": points_cost,
        "stock": stock,
        "value_text": value_text,
        "validity_days": validity_days,
    }
    defaults.update(fields)
    return Reward.objects.create(code=code, **defaults)


SEK_50 = {"amount": "50.00", "currency": "SEK"}


ZERO = Decimal("0")


def benefits_url(member: Any) -> str:
    return f"/api/v1/members/{member.member_number}/benefits"


def use_url(member: Any, code: str) -> str:
    return f"/api/v1/members/{member.member_number}/benefits/{code}/use"


def use(
    api: Any, member: Any, code: str, store: str = "SE-001", key: str | None = None, **body: Any
) -> Any:
    """POST .../benefits/{code}/use with a fresh Idempotency-Key unless given."""
    return api.post(
        use_url(member, code),
        {"store_code": store, **body},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex,
    )


def set_tier(member: Member, code: str) -> Member:
    Member.objects.filter(pk=member.pk).update(tier=Tier.objects.get(code=code))
    member.refresh_from_db()
    return member


def enrol_at(member: Member, moment: datetime) -> Member:
    """Move the member's enrolment (auto_now_add) to `moment`."""
    Member.objects.filter(pk=member.pk).update(enrolled_at=moment)
    member.refresh_from_db()
    return member


def local(day: date, hour: int, minute: int = 0, tz: ZoneInfo = STOCKHOLM) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def buy(
    member: Member,
    amount: str = "100.00",
    *,
    store: str = "SE-001",
    channel: str = "store",
    category: str = "tools",
    occurred_at: datetime | None = None,
    receipt: str | None = None,
    lines: list[Line] | None = None,
    currency: str = "SEK",
) -> dict[str, Any]:
    """Book a purchase through the service, as the API does."""
    member.refresh_from_db()
    lines = lines or [Line(sku="SKU-1", amount=Decimal(amount), category=category)]
    body, _ = purchase_record(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        store_code=store,
        receipt_id=receipt or f"R-{uuid.uuid4().hex[:12]}",
        channel=channel,
        occurred_at=occurred_at or timezone.now() - timedelta(minutes=1),
        currency=currency,
        total=sum((line.amount for line in lines), Decimal(0)),
        lines=lines,
    )
    return body


def give_back(
    purchase: dict[str, Any], amount: str, *, store: str = "SE-001", sku: str = "SKU-1"
) -> dict[str, Any]:
    """Book a return of `amount` of the purchase's `sku`."""
    body, _ = return_record(
        actor=SYSTEM,
        store_code=store,
        receipt_id=f"RET-{uuid.uuid4().hex[:12]}",
        original_store_code=store,
        original_receipt_id=purchase["receipt_id"],
        occurred_at=timezone.now() - timedelta(seconds=30),
        currency="SEK",
        total=Decimal(amount),
        lines=[Line(sku=sku, amount=Decimal(amount))],
    )
    return body


def mission_row(member: Member, code: str) -> MemberMission | None:
    return MemberMission.objects.filter(member=member, mission__code=code).first()


def bonus_entries(member: Member, reference: str) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(member=member, kind="bonus", reference=reference))


# --- imports (tests/integrations/) ---------------------------------------------
MEMBER_HEADER = [
    "external_id",
    "market",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "language",
    "enrolled_at",
    "card",
    "points",
    "points_expire_on",
    "tier",
    "marketing_email",
    "marketing_sms",
    "profiling",
]
PURCHASE_HEADER = [
    "member_external_id",
    "member_number",
    "store_code",
    "receipt_id",
    "occurred_at",
    "currency",
    "total",
    "category",
]


def write_csv(path: Path, header: list[str], rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: ("" if value is None else value) for key, value in row.items()})
    return path


def run(kind: str, path: Path, *args: str) -> tuple[int, list[dict[str, str]]]:
    """(exit code, report lines as dicts)."""
    report = path.with_suffix(".report.csv")
    code = 0
    try:
        call_command(f"import_{kind}", str(path), "--report", str(report), *args)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    with open(report, encoding="utf-8", newline="") as handle:
        return code, list(csv.DictReader(handle))


def by_line(report: list[dict[str, str]]) -> dict[int, dict[str, str]]:
    return {int(row["line"]): row for row in report}


TOUCHED = [
    Member,
    Card,
    ConsentChange,
    PointsAccount,
    LedgerEntry,
    Lot,
    LotMovement,
    TierChange,
    Purchase,
    QualifyingMonth,
    OutboxEvent,
    Tier,
]


def counts() -> dict[str, int]:
    """Rows of every table an import touches (and some it must not)."""
    return {model.__name__: model.objects.count() for model in TOUCHED}
