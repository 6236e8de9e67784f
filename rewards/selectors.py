"""Reads about benefits, rewards and missions.

`usable_benefits` sits on the hottest path of the service (the lookup), so
it reads the benefit catalogue from a snapshot kept in the process for a few
seconds and asks the database one small question per call: this member's
tier, market, status and language, their counters for the current periods
and their member lists, in one UNION ALL query on primary-key and unique
indexes. The snapshot is only ever a view: the use of a benefit
(rewards.services.benefit_use) reads the catalogue and the counters afresh
and enforces the allowance in the database.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from rewards.periods import period_bounds

CATALOGUE_TTL = 5.0  # seconds: how long a staff edit may take to reach the lookup


@dataclass(frozen=True)
class CatalogueBenefit:
    id: int
    code: str
    name: str
    names: dict[str, str]
    description: str
    kind: str
    allowance: int | None
    period: str
    channel: str
    tier_ids: frozenset[int]
    market_ids: frozenset[int]  # empty: every market
    list_ids: frozenset[int]  # empty: no list needed


@dataclass(frozen=True)
class Catalogue:
    benefits: tuple[CatalogueBenefit, ...]
    markets: dict[int, tuple[str, int]]  # id -> (time zone, first day of week)
    loaded_at: float

    def counted(self) -> tuple[CatalogueBenefit, ...]:
        return tuple(b for b in self.benefits if b.allowance is not None)


def catalogue_load() -> Catalogue:
    """The active benefits and the markets, read from the database now."""
    from loyalty.models import Market
    from rewards.models import Benefit

    rows = list(
        Benefit.objects.filter(active=True).order_by("ordering", "code").values_list(
            "id", "code", "name", "names", "description", "kind", "allowance", "period", "channel"
        )
    )
    ids = [row[0] for row in rows]
    links: dict[str, dict[int, set[int]]] = {}
    for field, column in (("tiers", "tier_id"), ("markets", "market_id"),
                          ("member_lists", "memberlist_id")):
        through = getattr(Benefit, field).through
        found: dict[int, set[int]] = {}
        for benefit_id, other_id in through.objects.filter(benefit_id__in=ids).values_list(
            "benefit_id", column
        ):
            found.setdefault(benefit_id, set()).add(other_id)
        links[field] = found
    benefits = tuple(
        CatalogueBenefit(
            id=pk, code=code, name=name, names=names if isinstance(names, dict) else {},
            description=description, kind=kind, allowance=allowance, period=period,
            channel=channel,
            tier_ids=frozenset(links["tiers"].get(pk, ())),
            market_ids=frozenset(links["markets"].get(pk, ())),
            list_ids=frozenset(links["member_lists"].get(pk, ())),
        )
        for pk, code, name, names, description, kind, allowance, period, channel in rows
    )
    markets = {
        pk: (tz, first_day)
        for pk, tz, first_day in Market.objects.values_list("id", "time_zone", "first_day_of_week")
    }
    return Catalogue(benefits=benefits, markets=markets, loaded_at=time.monotonic())


_cached: Catalogue | None = None
_lock = threading.Lock()


def active_catalogue() -> Catalogue:
    """The catalogue snapshot of this process, at most CATALOGUE_TTL old."""
    global _cached
    snapshot = _cached
    if snapshot is not None and time.monotonic() - snapshot.loaded_at < CATALOGUE_TTL:
        return snapshot
    with _lock:
        snapshot = _cached
        if snapshot is None or time.monotonic() - snapshot.loaded_at >= CATALOGUE_TTL:
            snapshot = _cached = catalogue_load()
    return snapshot


def catalogue_forget() -> None:
    """Drop this process's snapshot (after an edit of benefits, in tests)."""
    global _cached
    _cached = None


def localized_name(name: str, names: dict[str, str], language: str) -> str:
    if language:
        found = names.get(language) or names.get(language.split("-")[0].lower())
        if found:
            return found
    return name


@dataclass
class MemberState:
    status: str
    tier_id: int
    market_id: int
    language: str
    used: dict[tuple[int, date], int]  # (benefit id, period start) -> uses
    list_ids: set[int]


def _as_date(value: Any) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value  # SQLite: text


def member_state(*, member_id: int, catalogue: Catalogue, now: datetime) -> MemberState | None:
    """What decides a member's benefits, in one query; None if no such member."""
    from members.models import Member
    from rewards.models import BenefitUsage, MemberList

    parts = [
        f"SELECT 0, tier_id, market_id, NULL, status, language FROM {Member._meta.db_table}"
        " WHERE id = %s"
    ]
    params: list[Any] = [member_id]
    counted = catalogue.counted()
    if counted:
        # The start of the current period of each counted benefit, in every
        # market it may apply to: a handful of dates, matched exactly.
        starts = sorted({
            period_bounds(b.period, time_zone=tz, first_day_of_week=first_day, now=now)[0]
            for b in counted
            for market_id, (tz, first_day) in catalogue.markets.items()
            if not b.market_ids or market_id in b.market_ids
        })
        benefit_ids = sorted({b.id for b in counted})
        if starts:
            parts.append(
                f'SELECT 1, benefit_id, "count", period_start, NULL, NULL'
                f" FROM {BenefitUsage._meta.db_table} WHERE member_id = %s"
                f" AND benefit_id IN ({', '.join(['%s'] * len(benefit_ids))})"
                f" AND period_start IN ({', '.join(['%s'] * len(starts))})"
            )
            params += [member_id, *benefit_ids, *starts]
    list_ids = sorted({i for b in catalogue.benefits for i in b.list_ids})
    if list_ids:
        parts.append(
            f"SELECT 2, memberlist_id, NULL, NULL, NULL, NULL"
            f" FROM {MemberList.members.through._meta.db_table} WHERE member_id = %s"
            f" AND memberlist_id IN ({', '.join(['%s'] * len(list_ids))})"
        )
        params += [member_id, *list_ids]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    state: MemberState | None = None
    used: dict[tuple[int, date], int] = {}
    lists: set[int] = set()
    for kind, a, b, day, status, language in rows:
        if kind == 0:
            state = MemberState(status=status, tier_id=a, market_id=b, language=language or "",
                                used=used, list_ids=lists)
        elif kind == 1:
            used[(a, _as_date(day))] = b
        else:
            lists.add(a)
    return state


def holds(benefit: CatalogueBenefit, state: MemberState) -> bool:
    """Whether the member holds the benefit: tier, market and lists."""
    return (
        state.tier_id in benefit.tier_ids
        and (not benefit.market_ids or state.market_id in benefit.market_ids)
        and (not benefit.list_ids or bool(benefit.list_ids & state.list_ids))
    )


def _views(catalogue: Catalogue, state: MemberState, now: datetime) -> list[dict[str, Any]]:
    tz, first_day = catalogue.markets[state.market_id]
    views = []
    for benefit in catalogue.benefits:
        if not holds(benefit, state):
            continue
        start, next_start = period_bounds(benefit.period, time_zone=tz,
                                          first_day_of_week=first_day, now=now)
        remaining = None
        if benefit.allowance is not None:
            remaining = max(benefit.allowance - state.used.get((benefit.id, start), 0), 0)
        views.append({
            "code": benefit.code,
            "name": localized_name(benefit.name, benefit.names, state.language),
            "kind": benefit.kind,
            "remaining": remaining,
            "period": benefit.period,
            "resets_on": next_start.isoformat() if next_start else None,
            "channel": benefit.channel,
            "description": benefit.description,
        })
    return views


def _evaluate(member_id: int, now: datetime, *, fresh: bool) -> tuple[MemberState | None, list[dict[str, Any]]]:
    catalogue = catalogue_load() if fresh else active_catalogue()
    if not catalogue.benefits:
        return None, []
    state = member_state(member_id=member_id, catalogue=catalogue, now=now)
    if state is None:
        return None, []
    if state.market_id not in catalogue.markets:  # a market newer than the snapshot
        if fresh:
            return state, []
        catalogue_forget()
        return _evaluate(member_id, now, fresh=True)
    return state, _views(catalogue, state, now)


def usable_benefits(*, member_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """The benefits a member can use now: [{"code", "name", "remaining"}],
    remaining null when unlimited. One SQL query (see the module's doc)."""
    state, views = _evaluate(member_id, now or timezone.now(), fresh=False)
    if state is None or state.status != "active":
        return []
    return [
        {"code": v["code"], "name": v["name"], "remaining": v["remaining"]}
        for v in views
        if v["remaining"] != 0
    ]


def member_benefits(*, member_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every benefit the member holds, read afresh: [{"code", "name", "kind",
    "remaining", "period", "resets_on", "channel", "description"}]."""
    _, views = _evaluate(member_id, now or timezone.now(), fresh=True)
    return views
