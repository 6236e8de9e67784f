"""Reads about members, shaped for their callers."""

from __future__ import annotations

from datetime import date
from typing import Any

import phonenumbers
from django.db import connection

from config.auth import Client
from config.errors import MultipleMatches, NotFound, ValidationFailed
from loyalty.models import Market, Tier
from members.models import Card, Member

LOOKUP_KINDS = ("card", "member_number", "phone", "email")


def normalize_phone(raw: str, *, region: str | None) -> str:
    """E.164, or ValidationFailed."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise ValidationFailed(
            "Not a valid phone number.", errors={"phone": ["Not a valid phone number."]}
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _market_clause(client: Client, column: str) -> tuple[str, list[Any]]:
    if client.market_ids is None:
        return "", []
    ids = sorted(client.market_ids)
    return f" AND {column} IN ({', '.join(['%s'] * len(ids))})", ids


def _client_region(client: Client) -> str | None:
    """The one market a client is bound to, as a phone region."""
    if client.market_ids is None or len(client.market_ids) != 1:
        return None
    from loyalty.selectors import market_by_id

    return market_by_id(next(iter(client.market_ids))).code


def tier_view(code: str, name: str, valid_until: date | None) -> dict[str, Any]:
    return {
        "code": code,
        "name": name,
        "valid_until": valid_until.isoformat() if valid_until else None,
    }


def points_view(balance: int, pending: int, expiring_points: int | None, expiring_on: date | str | None) -> dict[str, Any]:
    expiring = None
    if expiring_on is not None and expiring_points:
        on = expiring_on if isinstance(expiring_on, str) else expiring_on.isoformat()
        expiring = {"points": int(expiring_points), "on": on}
    return {"balance": balance, "pending": pending, "expiring": expiring}


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
JOIN loyalty_market mk ON mk.id = m.market_id
JOIN loyalty_tier t ON t.id = m.tier_id
JOIN loyalty_pointsaccount a ON a.member_id = m.id
"""


def member_lookup(*, client: Client, kind: str, value: str) -> dict[str, Any]:
    """The checkout's question: is this customer a member? Only active cards
    and members that are not erased are found, in the client's markets."""
    params: list[Any]
    if kind == "card":
        where = "JOIN members_card c ON c.member_id = m.id WHERE c.number = %s AND c.status = 'active'"
        params = [value]
    elif kind == "member_number":
        where = "WHERE m.member_number = %s"
        params = [value]
    elif kind == "email":
        where = "WHERE LOWER(m.email) = %s"
        params = [value.strip().lower()]
    elif kind == "phone":
        where = "WHERE m.phone = %s"
        params = [normalize_phone(value, region=_client_region(client))]
    else:  # pragma: no cover - the view validates kind
        raise ValidationFailed(f"Unknown identifier {kind}.")
    market_sql, market_params = _market_clause(client, "m.market_id")
    sql = f"{_LOOKUP_SQL} {where} AND m.status <> 'erased'{market_sql} LIMIT 2"
    with connection.cursor() as cursor:
        cursor.execute(sql, params + market_params)
        rows = cursor.fetchall()
    if not rows:
        raise NotFound("No member matches.")
    if len(rows) > 1:
        raise MultipleMatches(f"The {kind.replace('_', ' ')} matches more than one member.")
    (member_id, number, status, market, first_name, tier_code, tier_name, valid_until,
     balance, pending, next_on, next_points) = rows[0]
    if isinstance(valid_until, str):  # SQLite hands back text
        valid_until = date.fromisoformat(valid_until)
    from rewards.selectors import usable_benefits

    return {
        "member_number": number,
        "status": status,
        "market": market,
        "first_name": first_name,
        "tier": tier_view(tier_code, tier_name, valid_until),
        "points": points_view(balance, pending, next_points, next_on),
        "benefits": usable_benefits(member_id=member_id),
    }


def _columns(model: type) -> list[str]:
    return [f.column for f in model._meta.concrete_fields]


def visible_member(*, client: Client, member_number: str | None = None, card: str | None = None) -> Member:
    """The member a request names, with its market and tier, if this client
    may see it; else 404. A member of another market answers exactly like
    one that does not exist.

    Every call of the API starts here, so the query is written once as SQL
    and the rows become model instances without the ORM compiling it anew.
    """
    if card is not None:
        where = ("JOIN members_card c ON c.member_id = m.id "
                 "WHERE c.number = %s AND c.status = 'active'")
        params: list[Any] = [card]
    elif member_number is not None:
        where, params = "WHERE m.member_number = %s", [member_number]
    else:
        raise ValidationFailed("Name the member by card or member_number.")
    market_sql, market_params = _market_clause(client, "m.market_id")
    member_cols, market_cols, tier_cols = _columns(Member), _columns(Market), _columns(Tier)
    select = ", ".join([f"m.{c}" for c in member_cols] + [f"mk.{c}" for c in market_cols]
                       + [f"t.{c}" for c in tier_cols])
    sql = (f"SELECT {select} FROM members_member m "
           "JOIN loyalty_market mk ON mk.id = m.market_id JOIN loyalty_tier t ON t.id = m.tier_id "
           f"{where} AND m.status <> 'erased'{market_sql} LIMIT 1")
    with connection.cursor() as cursor:
        cursor.execute(sql, params + market_params)
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such member.")
    db = connection.alias
    first, second = len(member_cols), len(member_cols) + len(market_cols)
    member = _from_db(Member, db, row[:first])
    member.market = _from_db(Market, db, row[first:second])
    member.tier = _from_db(Tier, db, row[second:])
    return member


_converters: dict[type, list[tuple[Any, list[Any]]]] = {}


def _from_db(model: type, db: str, values: tuple[Any, ...]) -> Any:
    """A model instance from a row, converted as the ORM converts (the
    backend's converters, then the field's)."""
    fields = model._meta.concrete_fields
    if model not in _converters:
        cols = [field.get_col(model._meta.db_table) for field in fields]
        _converters[model] = [
            (col, connection.ops.get_db_converters(col) + col.get_db_converters(connection))
            for col in cols
        ]
    converted = []
    for value, (col, converters) in zip(values, _converters[model]):
        for converter in converters:
            value = converter(value, col, connection)
        converted.append(value)
    return model.from_db(db, [f.attname for f in fields], converted)


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


def member_summary(*, member: Member, balance: int, pending: int,
                   expiring: tuple[int | None, date | None] | None = None) -> dict[str, Any]:
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
    from loyalty.models import PointsAccount

    account = PointsAccount.objects.get(member_id=member.pk)
    cards = list(
        Card.objects.filter(member_id=member.pk, status=Card.Status.ACTIVE)
        .order_by("issued_at", "id")
        .values_list("number", flat=True)
    )
    summary = member_summary(member=member, balance=account.balance, pending=account.pending)
    return {
        "member_number": member.member_number,
        "cards": cards,
        "status": member.status,
        "market": member.market.code,
        "first_name": member.first_name,
        "last_name": member.last_name,
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
