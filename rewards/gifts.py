"""Gifts: the jobs that give points or a voucher on a birthday, a tier
upgrade and enrolment, as staff configure them in `GiftRule`.

Each gift is a `Gift` row with a unique `dedupe_key`, so each happens once
per member and period however often, or however many at once, the jobs run:

- birthday: members with a birth date, in their birthday month (in their
  market's time zone), once a year: `birthday:<year>:<member id>`;
- tier upgrade: once per upgrade, a `TierChange` with cause purchase or
  evaluation to a higher tier: `tier_upgrade:<tier change id>`;
- welcome: once per member, picked up after enrolment:
  `welcome:<member id>`.

Upgrades and enrolments from before a rule existed are not gifted after the
fact, and the jobs look back LOOKBACK at most (enough for a job that was
down a while). Where several active rules of a kind apply to a market, the
one naming the market (then the one naming the tier) comes first; the key
is per kind, so a member gets one gift, from the first rule that applies.

Set-based, like loyalty/lifecycle.py: candidates are walked in batches on a
key (member id, tier change id); a batch locks the accounts it credits
(accounts first, in member order), then one statement inserts the gifts
(INSERT ... ON CONFLICT DO NOTHING RETURNING), one more books their `bonus`
entries and matured lots and adds the points to the accounts (the ledger's
bulk form, loyalty.ledger.bonus_bulk), and one records their outbox events
(core.outbox.outbox_add_select). A member in debt, a voucher gift and SQLite go member by member
through the ledger code (rewards.services.voucher_issue for vouchers, with
the gift's key as the voucher's). A run killed half way resumes: what is
done is found by its key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

from celery.schedules import crontab
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from club.dates import local_date, market_days
from club.models import Market
from core.errors import DomainError
from core.jobs import Batch, JobResult, Progress, job, run_batches, set_based
from core.outbox import outbox_add, outbox_add_select
from loyalty.ledger import (
    account_lock,
    accounts_lock_many,
    bonus_bulk,
    entry_ids_draw,
    expiry_for,
    members_in_debt,
)
from loyalty.lifecycle import BATCH
from loyalty.models import TierChange
from loyalty.services import points_bonus
from members.models import Member
from rewards.models import Gift, GiftRule
from rewards.services import voucher_issue

logger = logging.getLogger(__name__)

LOOKBACK = timedelta(days=30)

# (keyset id, member id, dedupe key)
Candidate = tuple[int, int, str]
Candidates = Callable[[GiftRule, Market, date, datetime, int, int], list[Candidate]]

# The gifts of a batch, each once: those given before (by the key) are skipped.
_GIFTS_SQL = """
INSERT INTO rewards_gift (member_id, rule_id, kind, dedupe_key, points, entry_id, created_at)
SELECT member_id, %(rule)s, %(kind)s, dedupe_key, %(points)s, entry_id, %(now)s
FROM unnest(%(member_ids)s::bigint[], %(keys)s::text[], %(entry_ids)s::bigint[])
     AS c(member_id, dedupe_key, entry_id)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING member_id, entry_id, dedupe_key
"""

_EVENTS_SELECT = """
SELECT 'gift.given', 'gift.given:' || g.dedupe_key, g.member_id,
       json_build_object('member_number', m.member_number, 'kind', %(kind)s::text,
                         'points', %(points)s::int, 'reward', NULL,
                         'gift', g.dedupe_key)::jsonb
FROM unnest(%(member_ids)s::bigint[], %(keys)s::text[]) AS g(member_id, dedupe_key)
JOIN members_member m ON m.id = g.member_id
"""


def _give_points_sql(
    rule: GiftRule, market: Market, today: date, todo: list[tuple[int, str]], now: datetime
) -> int:
    """Credit a batch of members in debt to nobody, set-based: the gifts
    (those not given before), their `bonus` entries and lots (the ledger's
    bulk form) and their events, a statement each. The accounts are locked
    by the caller."""
    if not todo:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            _GIFTS_SQL,
            {
                "member_ids": [m for m, _ in todo],
                "keys": [k for _, k in todo],
                "entry_ids": entry_ids_draw(len(todo)),
                "rule": rule.pk,
                "kind": rule.kind,
                "points": rule.reward_points,
                "now": now,
            },
        )
        given = cursor.fetchall()
    if not given:
        return 0
    member_ids = [member_id for member_id, _, _ in given]
    keys = [key for _, _, key in given]
    bonus_bulk(
        entry_ids=[entry_id for _, entry_id, _ in given],
        member_ids=member_ids,
        references=[f"gift:{key}" for key in keys],
        points=rule.reward_points,
        reason=rule.name,
        today=today,
        expires_on=expiry_for(market, today),
        now=now,
    )
    outbox_add_select(
        _EVENTS_SELECT,
        {"member_ids": member_ids, "keys": keys, "kind": rule.kind, "points": rule.reward_points},
        now=now,
    )
    return len(given)


def gift_give(
    *, rule: GiftRule, member: Member, dedupe_key: str, now: datetime | None = None
) -> Gift | None:
    """Give one member the rule's gift under `dedupe_key`, once: None when
    the key was given before. In the caller's transaction or its own."""
    now = now or timezone.now()
    with transaction.atomic():
        account_lock(member.pk)  # the lock order: the account first
        if Gift.objects.filter(dedupe_key=dedupe_key).exists():
            return None
        gift = Gift(
            member=member,
            rule=rule,
            kind=rule.kind,
            dedupe_key=dedupe_key,
            points=rule.reward_points or 0,
            created_at=now,
        )
        if rule.reward_points:
            gift.entry = points_bonus(
                member=member,
                points=rule.reward_points,
                reason=rule.name,
                reference=f"gift:{dedupe_key}",
                now=now,
            )
        else:
            gift.voucher = voucher_issue(
                member=member,
                reward=rule.reward,
                source="gift",
                dedupe_key=f"gift:{dedupe_key}",
                now=now,
            )
        gift.save()
        outbox_add(
            topic="gift.given",
            dedupe_key=f"gift.given:{dedupe_key}",
            member_id=member.pk,
            payload={
                "member_number": member.member_number,
                "kind": rule.kind,
                "points": rule.reward_points or 0,
                "reward": rule.reward.code if rule.reward_id else None,
                "gift": dedupe_key,
            },
        )
    return gift


def _give_each(rule: GiftRule, todo: list[tuple[int, str]], now: datetime) -> int:
    members = {
        m.pk: m
        for m in Member.objects.select_related("market").filter(
            pk__in=[member_id for member_id, _ in todo]
        )
    }
    given = 0
    for member_id, key in sorted(todo):  # member order: the lock order
        try:
            given += (
                gift_give(rule=rule, member=members[member_id], dedupe_key=key, now=now) is not None
            )
        except DomainError as exc:  # a voucher out of stock: the next run tries again
            logger.warning("gift %s not given: %s", key, exc.detail)
    return given


def _give_batch(rule: GiftRule, market: Market, candidates: list[Candidate]) -> int:
    keys = [key for _, _, key in candidates]
    done = set(Gift.objects.filter(dedupe_key__in=keys).values_list("dedupe_key", flat=True))
    todo = [(member_id, key) for _, member_id, key in candidates if key not in done]
    if not todo:
        return 0
    now = timezone.now()
    with transaction.atomic():
        if not (rule.reward_points and set_based()):
            return _give_each(rule, todo, now)
        member_ids = sorted({member_id for member_id, _ in todo})
        accounts_lock_many(member_ids)
        # Points that pay a debt go lot by lot: the few in debt take the
        # per-member path.
        debtors = members_in_debt(member_ids)
        # Credited today (the job's as-of only chose who is due), like points_bonus.
        given = _give_points_sql(
            rule,
            market,
            local_date(market, now),
            [(m, k) for m, k in todo if m not in debtors],
            now,
        )
        if debtors:
            given += _give_each(rule, [(m, k) for m, k in todo if m in debtors], now)
        return given


def _rules_for(rules: list[GiftRule], market: Market) -> list[GiftRule]:
    """The active rules that apply to the market, the most specific first."""
    applying = []
    for rule in rules:
        market_ids = {m.pk for m in rule.markets.all()}
        if market_ids and market.pk not in market_ids:
            continue
        applying.append((not market_ids, rule.tier_id is None, rule.pk, rule))
    return [rule for *_, rule in sorted(applying, key=lambda item: item[:3])]


def _gifts_run(
    name: str,
    kind: str,
    candidates: Candidates,
    as_of: datetime,
    batch_size: int,
    progress: Progress | None,
    max_batches: int | None,
) -> JobResult:
    rules = list(
        GiftRule.objects.filter(kind=kind, active=True)
        .select_related("reward", "tier")
        .prefetch_related("markets")
    )

    def batches(rule: GiftRule, market: Market, today: date) -> Batch:
        after = 0

        def batch() -> int | None:
            nonlocal after
            rows = candidates(rule, market, today, as_of, after, batch_size)
            if not rows:
                return None
            after = rows[-1][0]
            return _give_batch(rule, market, rows)

        return batch

    if not rules:
        return JobResult(name)
    return run_batches(
        name,
        (
            batches(rule, market, today)
            for market, today in market_days(as_of)
            for rule in _rules_for(rules, market)
        ),
        progress,
        max_batches,
    )


# --- birthday -------------------------------------------------------------------


def _birthday_candidates(
    rule: GiftRule, market: Market, today: date, as_of: datetime, after: int, size: int
) -> list[Candidate]:
    ids = (
        Member.objects.filter(
            market=market,
            status=Member.Status.ACTIVE,
            birth_date__month=today.month,
            enrolled_at__lte=as_of,
            id__gt=after,
        )
        .order_by("id")
        .values_list("id", flat=True)[:size]
    )
    return [(member_id, member_id, f"birthday:{today.year}:{member_id}") for member_id in ids]


@job(title="gifts: birthday", schedule=crontab(minute="35", hour="5"), unit="gifts")
def birthday_gifts(
    *,
    as_of: datetime,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Birthday gifts: members in their birthday month, once a year."""
    return _gifts_run(
        "birthday_gifts",
        GiftRule.Kind.BIRTHDAY,
        _birthday_candidates,
        as_of,
        batch_size,
        progress,
        max_batches,
    )


# --- tier upgrade ------------------------------------------------------------------


def _since(rule: GiftRule, as_of: datetime) -> datetime:
    return max(rule.created_at, as_of - LOOKBACK)


def _upgrade_candidates(
    rule: GiftRule, market: Market, today: date, as_of: datetime, after: int, size: int
) -> list[Candidate]:
    changes = TierChange.objects.filter(
        member__market=market,
        member__status=Member.Status.ACTIVE,
        cause__in=[TierChange.Cause.PURCHASE, TierChange.Cause.EVALUATION],
        to_tier__rank__gt=F("from_tier__rank"),
        changed_at__gte=_since(rule, as_of),
        changed_at__lte=as_of,
        id__gt=after,
    )
    if rule.tier_id is not None:
        changes = changes.filter(to_tier_id=rule.tier_id)
    rows = changes.order_by("id").values_list("id", "member_id")[:size]
    return [(change_id, member_id, f"tier_upgrade:{change_id}") for change_id, member_id in rows]


@job(title="gifts: tier upgrade", schedule=crontab(minute="45"), unit="gifts")
def tier_upgrade_gifts(
    *,
    as_of: datetime,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Tier-upgrade gifts: once per upgrade (by a purchase or the evaluation)."""
    return _gifts_run(
        "tier_upgrade_gifts",
        GiftRule.Kind.TIER_UPGRADE,
        _upgrade_candidates,
        as_of,
        batch_size,
        progress,
        max_batches,
    )


# --- welcome -------------------------------------------------------------------------


def _welcome_candidates(
    rule: GiftRule, market: Market, today: date, as_of: datetime, after: int, size: int
) -> list[Candidate]:
    ids = (
        Member.objects.filter(
            market=market,
            status=Member.Status.ACTIVE,
            enrolled_at__gte=_since(rule, as_of),
            enrolled_at__lte=as_of,
            id__gt=after,
        )
        .order_by("id")
        .values_list("id", flat=True)[:size]
    )
    return [(member_id, member_id, f"welcome:{member_id}") for member_id in ids]


@job(title="gifts: welcome", schedule=crontab(minute="50"), unit="gifts")
def welcome_gifts(
    *,
    as_of: datetime,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Welcome gifts: once per member, for those who enrolled lately."""
    return _gifts_run(
        "welcome_gifts",
        GiftRule.Kind.WELCOME,
        _welcome_candidates,
        as_of,
        batch_size,
        progress,
        max_batches,
    )
