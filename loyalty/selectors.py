"""Reads of the ledger: a member's points and entries, the member object
that carries them, and the proof that the cached figures equal the entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import connection

from core.http import decode_cursor, encode_cursor
from loyalty.models import LedgerEntry, PointsAccount
from members.models import Card, Member
from members.selectors import tier_view


def points_view(
    balance: int, pending: int, expiring_points: int | None, expiring_on: date | str | None
) -> dict[str, Any]:
    expiring = None
    if expiring_on is not None and expiring_points:
        on = expiring_on if isinstance(expiring_on, str) else expiring_on.isoformat()
        expiring = {"points": int(expiring_points), "on": on}
    return {"balance": balance, "pending": pending, "expiring": expiring}


_EXPIRING_SQL = """
SELECT l.expires_on, SUM(l.remaining) FROM loyalty_lot l
WHERE l.member_id = %s AND l.remaining > 0
  AND l.expires_on = (SELECT MIN(l2.expires_on) FROM loyalty_lot l2
                      WHERE l2.member_id = %s AND l2.remaining > 0)
GROUP BY l.expires_on
"""


def points_expiring(*, member_id: int) -> tuple[int | None, date | None]:
    """The next expiry: one query on the index of open lots."""
    with connection.cursor() as cursor:
        cursor.execute(_EXPIRING_SQL, [member_id, member_id])
        row = cursor.fetchone()
    if row is None:
        return None, None
    on = date.fromisoformat(row[0]) if isinstance(row[0], str) else row[0]
    return int(row[1]), on


def member_summary(
    *,
    member: Member,
    balance: int,
    pending: int,
    expiring: tuple[int | None, date | None] | None = None,
) -> dict[str, Any]:
    """The `member` object every points-changing call answers with."""
    if expiring is None:
        expiring = points_expiring(member_id=member.pk)
    return {
        "member_number": member.member_number,
        "tier": tier_view(member.tier.code, member.tier.name, member.tier_valid_until),
        "points": points_view(balance, pending, *expiring),
    }


def member_detail(*, member: Member) -> dict[str, Any]:
    """The full member object of API.md."""
    account = PointsAccount.objects.get(member_id=member.pk)
    cards = list(
        Card.objects.filter(member_id=member.pk, status=Card.Status.ACTIVE)
        .order_by("issued_at", "id")
        .values_list("number", flat=True)
    )
    summary = member_summary(member=member, balance=account.balance, pending=account.pending)
    erased = member.status == Member.Status.ERASED
    return {
        "member_number": member.member_number,
        "cards": cards,
        "status": member.status,
        "market": member.market.code,
        # An erased member's names are gone: null, not an empty string.
        "first_name": None if erased else member.first_name,
        "last_name": None if erased else member.last_name,
        "email": member.email,
        "phone": member.phone,
        "birth_date": member.birth_date.isoformat() if member.birth_date else None,
        "language": member.language,
        "channel": member.channel,
        "enrolled_at": member.enrolled_at.isoformat(),
        "consents": {
            "marketing_email": member.marketing_email,
            "marketing_sms": member.marketing_sms,
            "profiling": member.profiling,
        },
        "tier": summary["tier"],
        "points": summary["points"],
    }


def member_ledger(
    *, member_id: int, cursor: str | None, size: int
) -> tuple[list[dict[str, Any]], str | None]:
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
            found.extend(
                Discrepancy(int(m), check, int(c), int(f)) for m, c, f in cursor.fetchall()
            )
    return found


def accounts_checked() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM loyalty_pointsaccount")
        return int(cursor.fetchone()[0])
