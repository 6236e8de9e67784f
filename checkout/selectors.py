"""The checkout's reads: the member lookup, the hottest call of the service."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import connection

from core.actors import Actor
from core.errors import MultipleMatches, NotFound, ValidationFailed
from loyalty.selectors import points_view
from members.selectors import market_clause, normalize_phone, phone_region, tier_view
from rewards.selectors import usable_benefits

# The hottest call of the service: one query answers it (plus the usable
# benefits, read by their own selector). Correlated subqueries find the
# next expiry on the partial index of open lots.
_LOOKUP_SQL = """
SELECT m.id, m.member_number, m.status, mk.code, m.first_name,
       t.code, t.name, m.tier_valid_until,
       a.balance, a.pending,
       (SELECT MIN(l.expires_on) FROM loyalty_lot l
         WHERE l.member_id = m.id AND l.remaining > 0) AS next_on,
       (SELECT SUM(l.remaining) FROM loyalty_lot l
         WHERE l.member_id = m.id AND l.remaining > 0
           AND l.expires_on = (SELECT MIN(l2.expires_on) FROM loyalty_lot l2
                               WHERE l2.member_id = m.id AND l2.remaining > 0)) AS next_points
FROM members_member m
JOIN club_market mk ON mk.id = m.market_id
JOIN club_tier t ON t.id = m.tier_id
JOIN loyalty_pointsaccount a ON a.member_id = m.id
"""


def member_lookup(*, actor: Actor, kind: str, value: str) -> dict[str, Any]:
    """The checkout's question: is this customer a member? Only active cards
    and members that are not erased are found, in the client's markets."""
    params: list[Any]
    if kind == "card":
        where = (
            "JOIN members_card c ON c.member_id = m.id WHERE c.number = %s AND c.status = 'active'"
        )
        params = [value]
    elif kind == "member_number":
        where = "WHERE m.member_number = %s"
        params = [value]
    elif kind == "email":
        where = "WHERE LOWER(m.email) = %s"
        params = [value.strip().lower()]
    elif kind == "phone":
        where = "WHERE m.phone = %s"
        params = [normalize_phone(value, region=phone_region(actor))]
    else:  # pragma: no cover - the view validates kind
        raise ValidationFailed(f"Unknown identifier {kind}.")
    market_sql, market_params = market_clause(actor, "m.market_id")
    sql = f"{_LOOKUP_SQL} {where} AND m.status <> 'erased'{market_sql} LIMIT 2"
    with connection.cursor() as cursor:
        cursor.execute(sql, params + market_params)
        rows = cursor.fetchall()
    if not rows:
        raise NotFound("No member matches.")
    if len(rows) > 1:
        raise MultipleMatches(f"The {kind.replace('_', ' ')} matches more than one member.")
    (
        member_id,
        number,
        status,
        market,
        first_name,
        tier_code,
        tier_name,
        valid_until,
        balance,
        pending,
        next_on,
        next_points,
    ) = rows[0]
    if isinstance(valid_until, str):  # SQLite hands back text
        valid_until = date.fromisoformat(valid_until)
    return {
        "member_number": number,
        "status": status,
        "market": market,
        "first_name": first_name,
        "tier": tier_view(tier_code, tier_name, valid_until),
        "points": points_view(balance, pending, next_points, next_on),
        "benefits": usable_benefits(member_id=member_id),
    }
