"""Small helpers the loyalty tests share."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from club.models import Market
from loyalty.models import PointsAccount
from loyalty.selectors import ledger_discrepancies


def account(member: Any) -> tuple[int, int]:
    """(balance, pending) as the account caches them."""
    row = PointsAccount.objects.get(member_id=member.pk)
    return row.balance, row.pending


def assert_ledger_consistent() -> None:
    found = ledger_discrepancies()
    assert found == [], [str(d) for d in found]


def set_window(market_code: str, days: int) -> None:
    Market.objects.filter(code=market_code).update(return_window_days=days)


def return_body(original_receipt: str, receipt_id: str, amount: str, *, sku: str = "SKU-1",
                store: str = "SE-001", original_store: str = "SE-001", currency: str = "SEK",
                lines: list[dict[str, Any]] | None = None, total: str | None = None) -> dict[str, Any]:
    lines = lines if lines is not None else [{"sku": sku, "quantity": 1, "amount": amount}]
    return {
        "store_code": store, "receipt_id": receipt_id,
        "original": {"store_code": original_store, "receipt_id": original_receipt},
        "occurred_at": (timezone.now() - timedelta(seconds=30)).isoformat(),
        "currency": currency, "total": total if total is not None else amount, "lines": lines,
    }


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body
