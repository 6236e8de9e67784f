"""Reads about markets, the ledger and its proof."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db import connection

from config.http import decode_cursor, encode_cursor
from loyalty.models import LedgerEntry, Market, Store


_STORE_SECONDS = 30.0
_stores: dict[str, tuple[Store, float]] = {}


def store_by_code(code: str) -> Store | None:
    """Stores change seldom and are asked for on every receipt: a store
    found is kept in the process for 30 seconds (a store not found is
    always looked up again, so a new one is known at once)."""
    now = time.monotonic()
    cached = _stores.get(code)
    if cached is not None and now - cached[1] < _STORE_SECONDS:
        return cached[0]
    store = Store.objects.filter(code=code).first()
    if store is not None:
        if len(_stores) > 10_000:
            _stores.clear()
        _stores[code] = (store, now)
    return store


def forget_cached_stores() -> None:
    _stores.clear()


def market_by_id(market_id: int) -> Market:
    return Market.objects.get(pk=market_id)


def member_ledger(*, member_id: int, cursor: str | None, size: int) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paginated on the entry id."""
    qs = LedgerEntry.objects.filter(member_id=member_id).order_by("-id")
    if cursor:
        qs = qs.filter(id__lt=decode_cursor(cursor))
    rows = list(
        qs.values("id", "kind", "points", "created_at", "reference", "expires_on")[: size + 1]
    )
    has_more = len(rows) > size
    rows = rows[:size]
    results = [
        {
            "id": row["id"],
            "kind": row["kind"],
            "points": row["points"],
            "created_at": row["created_at"].isoformat(),
            "reference": row["reference"],
            "expires_on": row["expires_on"].isoformat() if row["expires_on"] else None,
        }
        for row in rows
    ]
    return results, encode_cursor(rows[-1]["id"]) if has_more else None


@dataclass(frozen=True)
class Discrepancy:
    member_id: int
    check: str
    cached: int
    from_ledger: int

    def __str__(self) -> str:
        return f"member {self.member_id}: {self.check} cached {self.cached}, ledger says {self.from_ledger}"


# Each query returns the rows where a cached figure and the ledger disagree.
_CHECKS = {
    "balance+pending": """
        SELECT a.member_id, a.balance + a.pending, COALESCE(e.total, 0)
        FROM loyalty_pointsaccount a
        LEFT JOIN (SELECT member_id, SUM(points) AS total FROM loyalty_ledgerentry
                   GROUP BY member_id) e ON e.member_id = a.member_id
        WHERE a.balance + a.pending <> COALESCE(e.total, 0)
    """,
    "pending": """
        SELECT a.member_id, a.pending, COALESCE(l.total, 0)
        FROM loyalty_pointsaccount a
        LEFT JOIN (SELECT member_id, SUM(remaining) AS total FROM loyalty_lot
                   WHERE NOT matured GROUP BY member_id) l ON l.member_id = a.member_id
        WHERE a.pending <> COALESCE(l.total, 0)
    """,
    "balance": """
        SELECT a.member_id, a.balance, COALESCE(l.total, 0)
        FROM loyalty_pointsaccount a
        LEFT JOIN (SELECT member_id, SUM(remaining) AS total FROM loyalty_lot
                   WHERE matured GROUP BY member_id) l ON l.member_id = a.member_id
        WHERE CASE WHEN a.balance > 0 THEN a.balance ELSE 0 END <> COALESCE(l.total, 0)
    """,
    "lot remaining": """
        SELECT l.member_id, l.remaining, l.points + COALESCE(m.total, 0)
        FROM loyalty_lot l
        LEFT JOIN (SELECT lot_id, SUM(points) AS total FROM loyalty_lotmovement
                   GROUP BY lot_id) m ON m.lot_id = l.id
        WHERE l.remaining <> l.points + COALESCE(m.total, 0)
    """,
    "entries without account": """
        SELECT e.member_id, 0, SUM(e.points)
        FROM loyalty_ledgerentry e
        LEFT JOIN loyalty_pointsaccount a ON a.member_id = e.member_id
        WHERE a.member_id IS NULL
        GROUP BY e.member_id
    """,
}


def ledger_discrepancies(*, limit: int = 1000) -> list[Discrepancy]:
    """Every place where a cached figure differs from what the entries say.

    Set-based: one pass per check over the whole ledger, whatever its size.
    """
    found: list[Discrepancy] = []
    with connection.cursor() as cursor:
        for check, sql in _CHECKS.items():
            cursor.execute(f"{sql} LIMIT %s", [limit])
            found.extend(Discrepancy(int(m), check, int(c), int(f)) for m, c, f in cursor.fetchall())
    return found


def accounts_checked() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM loyalty_pointsaccount")
        return int(cursor.fetchone()[0])
