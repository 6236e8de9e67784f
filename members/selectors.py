"""Reads about members, shaped for their callers."""

from __future__ import annotations

from datetime import date
from typing import Any

import phonenumbers
from django.db import connection
from django.db.models import QuerySet

from club.models import Market, Tier
from club.selectors import market_by_id
from core.actors import Actor
from core.errors import NotFound, ValidationFailed
from members.models import Member

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


def market_clause(actor: Actor, column: str) -> tuple[str, list[Any]]:
    if actor.market_ids is None:
        return "", []
    ids = sorted(actor.market_ids)
    return f" AND {column} IN ({', '.join(['%s'] * len(ids))})", ids


def phone_region(actor: Actor) -> str | None:
    """The one market a client is bound to, as a phone region."""
    if actor.market_ids is None or len(actor.market_ids) != 1:
        return None
    return market_by_id(next(iter(actor.market_ids))).code


def tier_view(code: str, name: str, valid_until: date | None) -> dict[str, Any]:
    return {
        "code": code,
        "name": name,
        "valid_until": valid_until.isoformat() if valid_until else None,
    }


def _columns(model: type) -> list[str]:
    return [f.column for f in model._meta.concrete_fields]


def visible_member(
    *, actor: Actor, member_number: str | None = None, card: str | None = None
) -> Member:
    """The member a request names, with its market and tier, if this client
    may see it; else 404. A member of another market answers exactly like
    one that does not exist.

    An erased member is found by its member number (GET answers its erased
    state, export what is left, every write `member_inactive` through
    `Member.check_active`), never by a card (its cards are blocked).

    Every call of the API starts here, so the query is written once as SQL
    and the rows become model instances without the ORM compiling it anew.
    """
    if card is not None:
        where = (
            "JOIN members_card c ON c.member_id = m.id WHERE c.number = %s AND c.status = 'active'"
        )
        params: list[Any] = [card]
    elif member_number is not None:
        where, params = "WHERE m.member_number = %s", [member_number]
    else:
        raise ValidationFailed("Name the member by card or member_number.")
    market_sql, market_params = market_clause(actor, "m.market_id")
    member_cols, market_cols, tier_cols = _columns(Member), _columns(Market), _columns(Tier)
    select = ", ".join(
        [f"m.{c}" for c in member_cols]
        + [f"mk.{c}" for c in market_cols]
        + [f"t.{c}" for c in tier_cols]
    )
    sql = (
        f"SELECT {select} FROM members_member m "
        "JOIN club_market mk ON mk.id = m.market_id JOIN club_tier t ON t.id = m.tier_id "
        f"{where}{market_sql} LIMIT 1"
    )
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


def profiled_members() -> QuerySet[Member]:
    """The only members anything may profile (score, segment, aim a
    campaign at): active ones who gave the `profiling` consent."""
    return Member.objects.filter(status=Member.Status.ACTIVE, profiling=True)
