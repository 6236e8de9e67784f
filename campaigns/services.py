"""Campaigns: creating and changing them, and what they give a purchase.

The purchase (checkout.services.purchase_record) asks `campaigns_candidates`
for the market's campaigns that may match (a snapshot each process keeps
for SNAPSHOT_TTL seconds: no query on most purchases), reads the member's
segment only when one of them names segments, and calls `bonuses_grant`
inside its transaction, after the member's account is locked. Budgets and
per-member limits are claimed there with conditional statements in campaign
order (the lock order: the account, then the campaigns by id), so no number
of parallel purchases books more than a budget or a limit allows. A return
gives back in proportion (`bonuses_reverse`), budget included.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from campaigns.models import Assignment, Campaign, CampaignUsage, PurchaseBonus
from club.models import Market, Store, Tier
from club.selectors import market_by_code
from core.actors import Actor
from core.errors import AlreadyExists, InvalidState, NotFound, ValidationFailed
from loyalty.models import Purchase
from loyalty.services import Line

SNAPSHOT_TTL = 5.0  # seconds: how long a staff edit may take to reach purchases elsewhere
# A receipt may be 90 days old (club.dates.occurred_at_check): campaigns
# that ended before that can no longer match, those starting soon may.
_LOOKBACK = timedelta(days=91)
_LOOKAHEAD = timedelta(days=1)


# --- what a purchase sees: the market's candidate campaigns -----------------


@dataclass(frozen=True)
class ActiveCampaign:
    id: int
    code: str
    starts_at: datetime
    ends_at: datetime
    channel: str
    stores: frozenset[str]
    tiers: frozenset[str]
    segments: frozenset[str]
    categories: frozenset[str]
    skus: frozenset[str]
    min_amount: Decimal
    kind: str
    factor: Decimal | None
    points: int | None
    budgeted: bool
    per_member_limit: int | None
    stackable: bool
    variant_id: int | None


@dataclass
class _Snapshot:
    by_market: dict[int, list[ActiveCampaign]]
    loaded_at: float


_cached: _Snapshot | None = None
_lock = threading.Lock()


def _snapshot_load() -> _Snapshot:
    now = timezone.now()
    rows = Campaign.objects.filter(
        paused=False, ends_at__gt=now - _LOOKBACK, starts_at__lte=now + _LOOKAHEAD
    ).values(
        "id",
        "market_id",
        "code",
        "starts_at",
        "ends_at",
        "channel",
        "stores",
        "tiers",
        "segments",
        "categories",
        "skus",
        "min_amount",
        "kind",
        "factor",
        "points",
        "budget_points",
        "spent_points",
        "per_member_limit",
        "stackable",
        "variant__id",
    )
    by_market: dict[int, list[ActiveCampaign]] = {}
    for row in rows:
        if row["budget_points"] is not None and row["spent_points"] >= row["budget_points"]:
            continue  # exhausted (a budget given back by a return is seen at the next load)
        by_market.setdefault(row["market_id"], []).append(
            ActiveCampaign(
                id=row["id"],
                code=row["code"],
                starts_at=row["starts_at"],
                ends_at=row["ends_at"],
                channel=row["channel"],
                stores=frozenset(row["stores"]),
                tiers=frozenset(row["tiers"]),
                segments=frozenset(row["segments"]),
                categories=frozenset(row["categories"]),
                skus=frozenset(row["skus"]),
                min_amount=row["min_amount"],
                kind=row["kind"],
                factor=row["factor"],
                points=row["points"],
                budgeted=row["budget_points"] is not None,
                per_member_limit=row["per_member_limit"],
                stackable=row["stackable"],
                variant_id=row["variant__id"],
            )
        )
    for found in by_market.values():
        found.sort(key=lambda c: c.id)
    return _Snapshot(by_market=by_market, loaded_at=time.monotonic())


def campaigns_forget() -> None:
    """Drop this process's snapshot (after an edit, in tests)."""
    global _cached
    _cached = None


def campaigns_candidates(*, market_id: int, occurred_at: datetime) -> list[ActiveCampaign]:
    """The market's unpaused campaigns whose window holds `occurred_at`,
    from a snapshot at most SNAPSHOT_TTL old (what it cannot know, an
    exhausted budget, the claim decides in the database)."""
    global _cached
    snapshot = _cached
    if snapshot is None or time.monotonic() - snapshot.loaded_at > SNAPSHOT_TTL:
        with _lock:
            snapshot = _cached
            if snapshot is None or time.monotonic() - snapshot.loaded_at > SNAPSHOT_TTL:
                snapshot = _cached = _snapshot_load()
    return [
        c for c in snapshot.by_market.get(market_id, ()) if c.starts_at <= occurred_at < c.ends_at
    ]


def needs_segment(candidates: list[ActiveCampaign]) -> bool:
    """Whether the member's segment must be read to match these."""
    return any(c.segments for c in candidates)


# --- matching ----------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """What one campaign would give this purchase, before budget and limit."""

    campaign: ActiveCampaign
    points: int
    matching_amount: Decimal
    matching_skus: tuple[str, ...]


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def offer_for(
    campaign: ActiveCampaign,
    *,
    lines: list[Line],
    excluded: frozenset[str],
    earn_rate: Decimal,
    channel: str,
    store_code: str,
    tier_code: str,
    segment: str | None,
    occurred_at: datetime,
) -> Offer | None:
    """The campaign's offer for a purchase, or None when it does not match.

    Matching lines are the lines that earn (a campaign never makes an
    excluded category earn), narrowed to `categories` or `skus` when either
    is set; they must add up to more than 0 and at least `min_amount`.
    """
    c = campaign
    if not (c.starts_at <= occurred_at < c.ends_at):
        return None
    if c.channel != Campaign.Channel.ANY and c.channel != channel:
        return None
    if c.stores and store_code not in c.stores:
        return None
    if c.tiers and tier_code not in c.tiers:
        return None
    if c.segments and segment not in c.segments:
        return None
    matching = [line for line in lines if line.category not in excluded and line.amount > 0]
    if c.categories or c.skus:
        matching = [
            line for line in matching if line.category in c.categories or line.sku in c.skus
        ]
    amount = sum((line.amount for line in matching), Decimal(0))
    if amount <= 0 or amount < c.min_amount:
        return None
    if c.kind == Campaign.Kind.MULTIPLIER:
        assert c.factor is not None
        points = _floor(amount * earn_rate * (c.factor - 1))
    else:
        points = c.points or 0
    if points <= 0:
        return None
    return Offer(
        campaign=c,
        points=points,
        matching_amount=amount,
        matching_skus=tuple(sorted({line.sku for line in matching})),
    )


def offers_chosen(offers: list[Offer]) -> list[Offer]:
    """Every stackable offer, and of the others only the one giving the
    most points (the older campaign on a tie); in campaign order."""
    stackable = [o for o in offers if o.campaign.stackable]
    others = [o for o in offers if not o.campaign.stackable]
    if others:
        stackable.append(max(others, key=lambda o: (o.points, -o.campaign.id)))
    return sorted(stackable, key=lambda o: o.campaign.id)


# --- claiming: budgets and per-member limits ----------------------------------
#
# On Postgres a purchase claims all its offers in one statement
# (_CLAIM_SQL below); elsewhere (SQLite, `make run` on a bare machine, whose
# writers are serialised anyway) one offer at a time with these.

_USAGE_SQL = """
INSERT INTO campaigns_campaignusage (campaign_id, member_id, purchases) VALUES (%s, %s, 1)
ON CONFLICT (campaign_id, member_id) DO UPDATE
SET purchases = campaigns_campaignusage.purchases + 1
WHERE campaigns_campaignusage.purchases < %s
RETURNING purchases
"""


def _usage_claim(campaign: ActiveCampaign, member_id: int) -> bool:
    if campaign.per_member_limit is None:
        return True
    with connection.cursor() as cursor:
        cursor.execute(_USAGE_SQL, [campaign.id, member_id, campaign.per_member_limit])
        return cursor.fetchone() is not None


def _usage_release(campaign: ActiveCampaign, member_id: int) -> None:
    if campaign.per_member_limit is not None:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE campaigns_campaignusage SET purchases = purchases - 1 "
                "WHERE campaign_id = %s AND member_id = %s",
                [campaign.id, member_id],
            )


def _budget_claim(campaign: ActiveCampaign, points: int) -> int:
    """The points the budget grants: all asked, what is left, or 0; under
    the campaign's row lock (databases without the one-statement claim)."""
    if not campaign.budgeted:
        return points
    row = (
        Campaign.objects.select_for_update()
        .filter(pk=campaign.id)
        .values_list("spent_points", "budget_points")
        .first()
    )
    if row is None or row[1] is None:
        return 0
    granted = min(points, row[1] - row[0])
    if granted <= 0:
        return 0
    Campaign.objects.filter(pk=campaign.id).update(spent_points=F("spent_points") + granted)
    return granted


def _budget_release(campaign_id: int, points: int) -> None:
    """Give points back to a budget (a return), never below 0."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_campaign SET spent_points = spent_points - %s "
            "WHERE id = %s AND budget_points IS NOT NULL",
            [points, campaign_id],
        )


@dataclass(frozen=True)
class Granted:
    campaign: str
    points: int


def bonuses_grant(
    *,
    member_id: int,
    market: Market,
    purchase_id: object,
    candidates: list[ActiveCampaign],
    lines: list[Line],
    channel: str,
    store_code: str,
    tier_code: str,
    segment: str | None,
    occurred_at: datetime,
) -> list[Granted]:
    """Match and claim a purchase's campaign bonuses, and record them
    (PurchaseBonus); the purchase books their sum in its `bonus` entry and
    lot, pending like its points and never qualifying. In the purchase's
    transaction, under the member's account lock (loyalty.services.
    purchase_book asks for them there): the member's usage rows read here
    cannot change under it."""
    if not candidates:
        return []
    excluded = frozenset(market.excluded_categories or ())
    offers = [
        offer
        for c in candidates
        if (
            offer := offer_for(
                c,
                lines=lines,
                excluded=excluded,
                earn_rate=market.earn_rate,
                channel=channel,
                store_code=store_code,
                tier_code=tier_code,
                segment=segment,
                occurred_at=occurred_at,
            )
        )
        is not None
    ]
    if not offers:
        return []
    offers = _eligible(offers, member_id)
    chosen = offers_chosen(offers)
    if connection.vendor == "postgresql":
        granted = _claim_at_once(chosen, member_id=member_id, purchase_id=purchase_id)
    else:
        granted = _claim_one_by_one(chosen, member_id=member_id, purchase_id=purchase_id)
    if not granted:
        return []
    return [Granted(campaign=offer.campaign.code, points=points) for offer, points in granted]


# The claims of a purchase's chosen offers in one statement: the member's
# usage is read (exact: every purchase of the member holds the account's
# lock), the budgets are locked in campaign order and claimed (what is left
# when a budget is reached), then the usage and the bonus rows are written
# for what was granted. Answers (campaign, points granted).
_CLAIM_SQL = """
WITH offer AS MATERIALIZED (
    SELECT * FROM unnest(%(ids)s::bigint[], %(points)s::bigint[], %(limits)s::int[],
                         %(budgeted)s::bool[], %(amounts)s::numeric[], %(skus)s::text[])
        AS o(campaign_id, points, lim, budgeted, amount, skus)
), allowed AS MATERIALIZED (
    SELECT o.* FROM offer o
    LEFT JOIN campaigns_campaignusage u
           ON u.campaign_id = o.campaign_id AND u.member_id = %(member)s
    WHERE o.lim IS NULL OR COALESCE(u.purchases, 0) < o.lim
), budget AS MATERIALIZED (
    SELECT c.id, c.spent_points,
           LEAST(a.points, c.budget_points - c.spent_points) AS granted
    FROM campaigns_campaign c JOIN allowed a ON a.campaign_id = c.id
    WHERE a.budgeted AND c.spent_points < c.budget_points
    ORDER BY c.id
    FOR UPDATE OF c
), spend AS (
    UPDATE campaigns_campaign c SET spent_points = b.spent_points + b.granted
    FROM budget b WHERE c.id = b.id
), granted AS MATERIALIZED (
    SELECT a.campaign_id, a.lim, a.amount, a.skus,
           CASE WHEN a.budgeted THEN b.granted ELSE a.points END AS points
    FROM allowed a LEFT JOIN budget b ON b.id = a.campaign_id
    WHERE NOT a.budgeted OR b.granted > 0
), usage AS (
    INSERT INTO campaigns_campaignusage (campaign_id, member_id, purchases)
    SELECT campaign_id, %(member)s, 1 FROM granted WHERE lim IS NOT NULL
    ON CONFLICT (campaign_id, member_id) DO UPDATE
    SET purchases = campaigns_campaignusage.purchases + 1
), bonus AS (
    INSERT INTO campaigns_purchasebonus (purchase_id, campaign_id, member_id, points,
                                         points_reversed, matching_amount,
                                         returned_matching_amount, matching_skus, created_at)
    SELECT %(purchase)s, campaign_id, %(member)s, points, 0, amount, 0, skus::jsonb, %(now)s
    FROM granted
)
SELECT campaign_id, points FROM granted ORDER BY campaign_id
"""


def _claim_at_once(
    chosen: list[Offer], *, member_id: int, purchase_id: object
) -> list[tuple[Offer, int]]:
    if not chosen:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "ids": [o.campaign.id for o in chosen],
                "points": [o.points for o in chosen],
                "limits": [o.campaign.per_member_limit for o in chosen],
                "budgeted": [o.campaign.budgeted for o in chosen],
                "amounts": [o.matching_amount for o in chosen],
                "skus": [orjson.dumps(list(o.matching_skus)).decode() for o in chosen],
                "member": member_id,
                "purchase": purchase_id,
                "now": timezone.now(),
            },
        )
        points = dict(cursor.fetchall())
    return [(o, points[o.campaign.id]) for o in chosen if o.campaign.id in points]


def _claim_one_by_one(
    chosen: list[Offer], *, member_id: int, purchase_id: object
) -> list[tuple[Offer, int]]:
    """The claims statement by statement (databases without the one above)."""
    granted: list[tuple[Offer, int]] = []
    for offer in chosen:
        if not _usage_claim(offer.campaign, member_id):
            continue
        points = _budget_claim(offer.campaign, offer.points)
        if points <= 0:
            _usage_release(offer.campaign, member_id)
            continue
        granted.append((offer, points))
    PurchaseBonus.objects.bulk_create(
        [
            PurchaseBonus(
                purchase_id=purchase_id,
                campaign_id=offer.campaign.id,
                member_id=member_id,
                points=points,
                matching_amount=offer.matching_amount,
                matching_skus=list(offer.matching_skus),
            )
            for offer, points in granted
        ]
    )
    return granted


def _eligible(offers: list[Offer], member_id: int) -> list[Offer]:
    """Leave out the campaigns this member may not have: the per-member
    limit reached, or tied to an experiment's variant the member is not
    assigned to. One query each, and only when an offer needs it: the
    usage is read here only when it decides which of several offers that
    do not stack is the best (else the claim reads it)."""
    others = [o for o in offers if not o.campaign.stackable]
    limited = [
        o.campaign.id for o in others if o.campaign.per_member_limit is not None and len(others) > 1
    ]
    if limited or connection.vendor != "postgresql":
        limited = [o.campaign.id for o in offers if o.campaign.per_member_limit is not None]
    if limited:
        used = dict(
            CampaignUsage.objects.filter(member_id=member_id, campaign_id__in=limited).values_list(
                "campaign_id", "purchases"
            )
        )
        offers = [
            o
            for o in offers
            if o.campaign.per_member_limit is None
            or used.get(o.campaign.id, 0) < o.campaign.per_member_limit
        ]
    variants = [o.campaign.variant_id for o in offers if o.campaign.variant_id is not None]
    if variants:
        mine = set(
            Assignment.objects.filter(member_id=member_id, variant_id__in=variants).values_list(
                "variant_id", flat=True
            )
        )
        offers = [
            o for o in offers if o.campaign.variant_id is None or o.campaign.variant_id in mine
        ]
    return offers


def bonuses_reverse(purchase: Purchase, lines: list[Line]) -> int:
    """A return of `lines` of `purchase`: each bonus gives back in
    proportion to its matching amount that came back (all of it once the
    whole purchase is back), and its budget gets the points again. Called
    by the return under the account's and the purchase's locks; answers
    the points to reverse."""
    bonuses = list(PurchaseBonus.objects.filter(purchase_id=purchase.pk).order_by("campaign_id"))
    if not bonuses:
        return 0
    whole = purchase.returned_amount >= purchase.total
    total = 0
    for bonus in bonuses:
        skus = set(bonus.matching_skus)
        back = sum((line.amount for line in lines if line.sku in skus), Decimal(0))
        bonus.returned_matching_amount = min(
            bonus.matching_amount, bonus.returned_matching_amount + back
        )
        if whole or bonus.returned_matching_amount >= bonus.matching_amount:
            reversed_now = bonus.points
        else:
            reversed_now = _floor(
                bonus.points * bonus.returned_matching_amount / bonus.matching_amount
            )
        delta = reversed_now - bonus.points_reversed
        bonus.points_reversed = reversed_now
        if delta:
            _budget_release(bonus.campaign_id, delta)
            total += delta
    PurchaseBonus.objects.bulk_update(bonuses, ["returned_matching_amount", "points_reversed"])
    return total


# --- managing campaigns --------------------------------------------------------


def _visible_market(actor: Actor, code: str) -> Market:
    market = market_by_code(code)
    if market is None or not actor.sees_market(market.pk):
        raise ValidationFailed(f"Unknown market {code}.", errors={"market": ["Unknown market."]})
    return market


def codes_check(market: Market, *, stores: list[str], tiers: list[str]) -> None:
    errors: dict[str, list[str]] = {}
    known_stores = set(
        Store.objects.filter(market=market, code__in=stores).values_list("code", flat=True)
    )
    unknown = sorted(set(stores) - known_stores)
    if unknown:
        errors["stores"] = [f"Not a store of market {market.code}: {', '.join(unknown)}."]
    known_tiers = set(Tier.objects.filter(code__in=tiers).values_list("code", flat=True))
    unknown = sorted(set(tiers) - known_tiers)
    if unknown:
        errors["tiers"] = [f"Unknown tiers: {', '.join(unknown)}."]
    if errors:
        raise ValidationFailed("Unknown codes.", errors=errors)


def campaign_create(
    *,
    actor: Actor,
    code: str,
    name: str,
    market_code: str,
    starts_at: datetime,
    ends_at: datetime,
    kind: str,
    factor: Decimal | None = None,
    points: int | None = None,
    channel: str = Campaign.Channel.ANY,
    stores: list[str] | None = None,
    tiers: list[str] | None = None,
    segments: list[str] | None = None,
    categories: list[str] | None = None,
    skus: list[str] | None = None,
    min_amount: Decimal = Decimal(0),
    budget_points: int | None = None,
    per_member_limit: int | None = None,
    stackable: bool = False,
) -> Campaign:
    market = _visible_market(actor, market_code)
    if ends_at <= starts_at:
        raise ValidationFailed(
            "ends_at must be after starts_at.", errors={"ends_at": ["Must be after starts_at."]}
        )
    stores, tiers = sorted(set(stores or ())), sorted(set(tiers or ()))
    codes_check(market, stores=stores, tiers=tiers)
    try:
        with transaction.atomic():
            campaign = Campaign.objects.create(
                code=code,
                name=name,
                market=market,
                starts_at=starts_at,
                ends_at=ends_at,
                channel=channel,
                stores=stores,
                tiers=tiers,
                segments=sorted(set(segments or ())),
                categories=sorted(set(categories or ())),
                skus=sorted(set(skus or ())),
                min_amount=min_amount,
                kind=kind,
                factor=factor if kind == Campaign.Kind.MULTIPLIER else None,
                points=points if kind == Campaign.Kind.POINTS else None,
                budget_points=budget_points,
                per_member_limit=per_member_limit,
                stackable=stackable,
            )
    except IntegrityError:
        raise AlreadyExists(f"A campaign {code} already exists in market {market.code}.") from None
    transaction.on_commit(campaigns_forget)
    campaigns_forget()
    return campaign


def campaign_find(*, actor: Actor, code: str, market_code: str | None = None) -> Campaign:
    """The campaign of that code in the markets the actor sees (`market_code`
    tells apart two markets' campaigns of one code)."""
    found = list(Campaign.objects.select_related("market").filter(code=code)[:10])
    found = [c for c in found if actor.sees_market(c.market_id)]
    if market_code is not None:
        found = [c for c in found if c.market.code == market_code]
    if not found:
        raise NotFound(f"No campaign {code}.")
    if len(found) > 1:
        raise ValidationFailed(
            f"Campaign {code} exists in several markets: name one with ?market=.",
            errors={"market": ["Required: the code is used in several markets."]},
        )
    return found[0]


def campaign_update(
    *, actor: Actor, campaign: Campaign, changes: dict[str, Any], now: datetime | None = None
) -> Campaign:
    """`name`, `ends_at`, `budget_points` (never below what is spent) and
    `paused`, under the campaign's row lock (a purchase's claim waits)."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if "ends_at" in changes and changes["ends_at"] <= locked.starts_at:
            raise ValidationFailed(
                "ends_at must be after starts_at.",
                errors={"ends_at": ["Must be after starts_at."]},
            )
        if "budget_points" in changes:
            budget = changes["budget_points"]
            if (budget is None) != (locked.budget_points is None):
                # Purchases claim from a budget only when they know of one
                # (their snapshot): a budget cannot come or go afterwards.
                raise ValidationFailed(
                    "A campaign keeps or lacks a budget from its creation: change its amount.",
                    errors={"budget_points": ["Set at creation: only its amount changes."]},
                )
            if budget is not None and budget < locked.spent_points:
                raise ValidationFailed(
                    f"budget_points cannot go below the {locked.spent_points} points booked.",
                    errors={"budget_points": [f"At least {locked.spent_points}."]},
                )
        for field in ("name", "ends_at", "budget_points", "paused"):
            if field in changes:
                setattr(locked, field, changes[field])
        locked.save()
    transaction.on_commit(campaigns_forget)
    campaigns_forget()
    return locked


def campaign_delete(*, actor: Actor, campaign: Campaign) -> None:
    """Only a campaign that never booked points (and is in no experiment)."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if PurchaseBonus.objects.filter(campaign=locked).exists():
            raise InvalidState(f"Campaign {locked.code} has booked points: pause it instead.")
        if hasattr(locked, "variant"):
            raise InvalidState(f"Campaign {locked.code} is a variant of an experiment.")
        CampaignUsage.objects.filter(campaign=locked).delete()
        locked.delete()
    transaction.on_commit(campaigns_forget)
    campaigns_forget()
