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

from club.models import Market
from core.actors import Actor
from core.errors import NotFound
from core.http import decode_cursor, encode_cursor
from loyalty.models import PointsAccount
from members.models import Member
from rewards.codes import code_format, code_normalize
from rewards.models import Benefit, BenefitUsage, MemberList, Reward, RewardPrice, Voucher
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
    rows = list(
        Benefit.objects.filter(active=True)
        .order_by("ordering", "code")
        .values_list(
            "id", "code", "name", "names", "description", "kind", "allowance", "period", "channel"
        )
    )
    ids = [row[0] for row in rows]
    links: dict[str, dict[int, set[int]]] = {}
    for field, column in (
        ("tiers", "tier_id"),
        ("markets", "market_id"),
        ("member_lists", "memberlist_id"),
    ):
        through = getattr(Benefit, field).through
        found: dict[int, set[int]] = {}
        for benefit_id, other_id in through.objects.filter(benefit_id__in=ids).values_list(
            "benefit_id", column
        ):
            found.setdefault(benefit_id, set()).add(other_id)
        links[field] = found
    benefits = tuple(
        CatalogueBenefit(
            id=pk,
            code=code,
            name=name,
            names=names if isinstance(names, dict) else {},
            description=description,
            kind=kind,
            allowance=allowance,
            period=period,
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
    parts = [
        f"SELECT 0, tier_id, market_id, NULL, status, language FROM {Member._meta.db_table}"
        " WHERE id = %s"
    ]
    params: list[Any] = [member_id]
    counted = catalogue.counted()
    if counted:
        # The start of the current period of each counted benefit, in every
        # market it may apply to: a handful of dates, matched exactly.
        starts = sorted(
            {
                period_bounds(b.period, time_zone=tz, first_day_of_week=first_day, now=now)[0]
                for b in counted
                for market_id, (tz, first_day) in catalogue.markets.items()
                if not b.market_ids or market_id in b.market_ids
            }
        )
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
            state = MemberState(
                status=status,
                tier_id=a,
                market_id=b,
                language=language or "",
                used=used,
                list_ids=lists,
            )
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
        start, next_start = period_bounds(
            benefit.period, time_zone=tz, first_day_of_week=first_day, now=now
        )
        remaining = None
        if benefit.allowance is not None:
            remaining = max(benefit.allowance - state.used.get((benefit.id, start), 0), 0)
        views.append(
            {
                "code": benefit.code,
                "name": localized_name(benefit.name, benefit.names, state.language),
                "kind": benefit.kind,
                "remaining": remaining,
                "period": benefit.period,
                "resets_on": next_start.isoformat() if next_start else None,
                "channel": benefit.channel,
                "description": benefit.description,
            }
        )
    return views


def _evaluate(
    member_id: int, now: datetime, *, fresh: bool
) -> tuple[MemberState | None, list[dict[str, Any]]]:
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


# --- rewards and vouchers ----------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """A reward's terms in one market: its price there, and what its voucher is worth."""

    points_cost: int
    value_amount: Any  # Decimal | None
    value_currency: str
    value_text: str

    def value(self) -> dict[str, str] | None:
        if self.value_amount is None:
            return None
        return {"amount": str(self.value_amount), "currency": self.value_currency}


def reward_offer(reward: Any, market: Any, prices: dict[int, Any] | None = None) -> Offer:
    """The reward in `market`: a RewardPrice there overrides the reward's own
    cost (and, if it has one, its value, in the market's currency).
    `prices` (market id -> RewardPrice) spares a query when preloaded."""
    if prices is None:
        price = RewardPrice.objects.filter(reward_id=reward.pk, market_id=market.pk).first()
    else:
        price = prices.get(market.pk)
    amount, currency = reward.value_amount, reward.value_currency
    if price is not None and price.value_amount is not None:
        amount, currency = price.value_amount, market.currency
    return Offer(
        points_cost=price.points_cost if price is not None else reward.points_cost,
        value_amount=amount,
        value_currency=currency if amount is not None else "",
        value_text=reward.value_text,
    )


def reward_offered_now(reward: Any, now: datetime) -> bool:
    return bool(
        reward.active
        and (reward.active_from is None or reward.active_from <= now)
        and (reward.active_until is None or now < reward.active_until)
    )


def reward_refusal(
    reward: Any,
    *,
    member: Any,
    offer: Offer,
    now: datetime,
    tier_ids: set[int],
    market_ids: set[int],
) -> tuple[str, str] | None:
    """Why the member may not claim the reward now, as (reason code, text),
    points aside; None if they may. `tier_ids` and `market_ids` are the
    reward's (empty: every tier, every market)."""
    if member.status != "active":
        return "member_inactive", f"Member {member.member_number} is {member.status}."
    if not reward_offered_now(reward, now):
        return "not_offered", f"Reward {reward.code} is not offered at the moment."
    if market_ids and member.market_id not in market_ids:
        return "market", f"Reward {reward.code} is not offered in market {member.market.code}."
    if offer.value_amount is not None and offer.value_currency != member.market.currency:
        return "market", (
            f"Reward {reward.code} has no value in {member.market.currency} "
            f"(market {member.market.code})."
        )
    if tier_ids and member.tier_id not in tier_ids:
        return "tier", f"Reward {reward.code} is not for the {member.tier.name} tier."
    if reward.stock is not None and reward.stock <= 0:
        return "out_of_stock", f"Reward {reward.code} is out of stock."
    return None


def rewards_catalogue(
    *, actor: Actor, member: Any = None, market: Any = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The rewards on offer now. For a member: those of their market, at its
    price, each with whether they can claim it now (`claimable`, and
    `reason` and `reason_detail` when not). Without one: those of `market`,
    or of every market the client sees, with the price in each."""
    now = now or timezone.now()
    if member is not None:
        markets = [member.market]
    elif market is not None:
        markets = [market]
    else:
        qs = Market.objects.order_by("code")
        if actor.market_ids is not None:
            qs = qs.filter(pk__in=actor.market_ids)
        markets = list(qs)
    market_pks = {m.pk for m in markets}
    rewards = list(
        Reward.objects.filter(active=True)
        .prefetch_related("tiers", "markets", "prices")
        .order_by("ordering", "code")
    )
    balance = None
    if member is not None:
        balance = (
            PointsAccount.objects.filter(member_id=member.pk)
            .values_list("balance", flat=True)
            .first()
            or 0
        )
    if member is not None:
        language = member.language
    elif len(markets) == 1:
        language = markets[0].language
    else:
        language = ""
    out = []
    for reward in rewards:
        if not reward_offered_now(reward, now):
            continue
        market_ids = {m.pk for m in reward.markets.all()}
        in_scope = [m for m in markets if not market_ids or m.pk in market_ids]
        if not in_scope:
            continue
        tier_ids = {t.pk for t in reward.tiers.all()}
        prices = {p.market_id: p for p in reward.prices.all() if p.market_id in market_pks}
        offers = [(m, reward_offer(reward, m, prices)) for m in in_scope]
        default = offers[0][1] if len(offers) == 1 else reward_offer(reward, in_scope[0], {})
        item: dict[str, Any] = {
            "code": reward.code,
            "name": localized_name(
                reward.name, reward.names if isinstance(reward.names, dict) else {}, language
            ),
            "description": reward.description,
            "points_cost": default.points_cost,
            "value": default.value(),
            "value_text": default.value_text,
            "validity_days": reward.validity_days,
            "stock": reward.stock,
            "tiers": sorted(t.code for t in reward.tiers.all()),
            "active_until": reward.active_until.isoformat() if reward.active_until else None,
            "prices": [
                {"market": m.code, "points_cost": o.points_cost, "value": o.value()}
                for m, o in offers
            ],
        }
        if member is not None:
            offer = offers[0][1]
            refusal = reward_refusal(
                reward,
                member=member,
                offer=offer,
                now=now,
                tier_ids=tier_ids,
                market_ids=market_ids,
            )
            if refusal is None and balance < offer.points_cost:
                refusal = (
                    "insufficient_points",
                    f"Balance {max(balance, 0)} is below {offer.points_cost}.",
                )
            if refusal is not None and refusal[0] == "market":
                continue  # e.g. a money voucher in another currency: not on offer here
            item["claimable"] = refusal is None
            item["reason"] = refusal[0] if refusal else None
            item["reason_detail"] = refusal[1] if refusal else None
        out.append(item)
    return out


def voucher_status(voucher: Any, now: datetime) -> str:
    """What the voucher is now: an issued one past its time is expired even
    before the expiry job has marked it."""
    if voucher.status == "issued" and voucher.expires_at <= now:
        return "expired"
    return voucher.status


def voucher_view(
    voucher: Any, *, now: datetime | None = None, language: str | None = None
) -> dict[str, Any]:
    """The voucher as the API shows it; `voucher` with reward, member and
    redeemed_store loaded."""
    now = now or timezone.now()
    reward = voucher.reward
    value = None
    if voucher.value_amount is not None:
        value = {"amount": str(voucher.value_amount), "currency": voucher.value_currency}
    lang = voucher.member.language if language is None else language
    return {
        "code": code_format(voucher.code),
        "reward": reward.code,
        "name": localized_name(
            reward.name, reward.names if isinstance(reward.names, dict) else {}, lang
        ),
        "status": voucher_status(voucher, now),
        "source": voucher.source,
        "value": value,
        "value_text": voucher.value_text,
        "points_cost": voucher.points_cost,
        "issued_at": voucher.issued_at.isoformat(),
        "expires_at": voucher.expires_at.isoformat(),
        "redeemed_at": voucher.redeemed_at.isoformat() if voucher.redeemed_at else None,
        "store_code": voucher.redeemed_store.code if voucher.redeemed_store_id else None,
        "receipt_id": voucher.redeemed_receipt_id or None,
        "member_number": voucher.member.member_number,
    }


def visible_voucher(*, actor: Actor, code: str) -> Any:
    """The voucher a code names, if this client sees its member's market;
    else not_found, exactly as for a code that does not exist."""
    normalized = code_normalize(code)
    voucher = None
    if normalized is not None:
        voucher = (
            Voucher.objects.select_related("reward", "member", "redeemed_store")
            .filter(code=normalized)
            .first()
        )
    if (
        voucher is None
        or not actor.sees_market(voucher.member.market_id)
        or voucher.member.status == "erased"
    ):
        raise NotFound("No such voucher.")
    return voucher


def member_vouchers(
    *, member: Any, cursor: str | None, size: int, now: datetime | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """The member's vouchers, newest first, a page at a time: (views, next cursor)."""
    qs = Voucher.objects.filter(member_id=member.pk).select_related("reward", "redeemed_store")
    if cursor:
        qs = qs.filter(pk__lt=decode_cursor(cursor))
    rows = list(qs.order_by("-id")[: size + 1])
    for row in rows:
        row.member = member
    more = len(rows) > size
    rows = rows[:size]
    now = now or timezone.now()
    return (
        [voucher_view(v, now=now) for v in rows],
        encode_cursor(rows[-1].pk) if more and rows else None,
    )
