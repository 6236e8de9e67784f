"""Writes about benefits, rewards and missions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from config.auth import Client
from config.errors import BenefitNotAvailable, MemberInactive, NotFound, UnknownStore
from config.outbox import outbox_add
from loyalty.models import Store
from members.models import Member
from rewards.models import Benefit, BenefitUsage, BenefitUse
from rewards.periods import period_bounds
from rewards.selectors import localized_name

# One statement counts the use and refuses to pass the allowance: a second
# transaction that conflicts on the same (member, benefit, period) row waits
# for the first, then re-reads the row and checks the condition again, so no
# number of parallel uses goes beyond the allowance. No row back: spent.
# (PostgreSQL, and SQLite from 3.35, which serialises writers anyway.)
_COUNT_SQL = """
INSERT INTO {table} (member_id, benefit_id, period_start, "count", updated_at)
VALUES (%s, %s, %s, 1, %s)
ON CONFLICT (member_id, benefit_id, period_start)
DO UPDATE SET "count" = {table}."count" + 1, updated_at = excluded.updated_at
{condition}
RETURNING "count"
"""


def _count_use(*, member_id: int, benefit: Benefit, period_start: Any, now: datetime) -> int | None:
    """The member's uses in the period after this one, or None if the
    allowance is spent (nothing changed then)."""
    if benefit.allowance is not None and benefit.allowance < 1:
        return None
    table = BenefitUsage._meta.db_table
    condition = f'WHERE {table}."count" < %s' if benefit.allowance is not None else ""
    params: list[Any] = [member_id, benefit.pk, period_start, now]
    if benefit.allowance is not None:
        params.append(benefit.allowance)
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_SQL.format(table=table, condition=condition), params)
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def _ineligible_reason(benefit: Benefit, member: Member, store: Store) -> str | None:
    if not benefit.active:
        return f"Benefit {benefit.code} is not offered at the moment."
    if not benefit.tiers.filter(pk=member.tier_id).exists():
        return f"Benefit {benefit.code} is not part of the {member.tier.name} tier."
    if benefit.markets.exists() and not benefit.markets.filter(pk=member.market_id).exists():
        return f"Benefit {benefit.code} is not offered in market {member.market.code}."
    if (benefit.member_lists.exists()
            and not benefit.member_lists.filter(members__pk=member.pk).exists()):
        return f"Benefit {benefit.code} is for selected members only."
    if benefit.channel != Benefit.Channel.BOTH and benefit.channel != store.channel:
        where = "in store" if benefit.channel == Benefit.Channel.STORE else "online"
        return f"Benefit {benefit.code} is used {where} only, not at {store.code}."
    return None


def benefit_use(
    *,
    client: Client | None,
    member: Member,
    benefit_code: str,
    store_code: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Use one of the member's benefits in a store or web shop.

    Refuses with not_found (no such benefit), member_inactive, unknown_store
    (not a store of the member's market) or benefit_not_available (not the
    member's, not here, or the period's uses spent); on success counts the
    use, records it and its `benefit.used` event in one transaction.
    """
    now = now or timezone.now()
    benefit = Benefit.objects.filter(code=benefit_code).first()
    if benefit is None:
        raise NotFound(f"No benefit {benefit_code}.")
    if member.status != Member.Status.ACTIVE:
        raise MemberInactive(f"Member {member.member_number} is {member.status}.")
    market = member.market
    store = Store.objects.filter(code=store_code, market_id=member.market_id).first()
    if store is None:
        raise UnknownStore(f"Store {store_code} is not registered in market {market.code}.")
    reason = _ineligible_reason(benefit, member, store)
    if reason:
        raise BenefitNotAvailable(reason)
    start, next_start = period_bounds(benefit.period, time_zone=market.time_zone,
                                      first_day_of_week=market.first_day_of_week, now=now)
    with transaction.atomic():
        count = _count_use(member_id=member.pk, benefit=benefit, period_start=start, now=now)
        if count is None:
            when = f"until {next_start.isoformat()}" if next_start else "for good"
            raise BenefitNotAvailable(
                f"Benefit {benefit.code} is used up {when}: "
                f"{benefit.allowance} per {benefit.period}."
            )
        use = BenefitUse.objects.create(
            member_id=member.pk, benefit=benefit, period_start=start, used_at=now, store=store,
            channel=store.channel, api_client_id=client.id if client and client.id else None,
        )
        remaining = None if benefit.allowance is None else max(benefit.allowance - count, 0)
        outbox_add(
            topic="benefit.used", dedupe_key=f"benefit.used:{use.pk}", member_id=member.pk,
            payload={
                "use_id": use.pk, "member_number": member.member_number,
                "benefit": benefit.code, "kind": benefit.kind, "store_code": store.code,
                "channel": store.channel, "used_at": now.isoformat(),
                "period_start": start.isoformat(), "remaining": remaining,
            },
        )
    return {
        "code": benefit.code,
        "name": localized_name(benefit.name, benefit.names if isinstance(benefit.names, dict) else {},
                               member.language),
        "kind": benefit.kind,
        "remaining": remaining,
        "period": benefit.period,
        "resets_on": next_start.isoformat() if next_start else None,
        "used_at": now.isoformat(),
        "store_code": store.code,
        "member_number": member.member_number,
    }
