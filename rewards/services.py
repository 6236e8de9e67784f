"""Writes about benefits, rewards and vouchers: a benefit's use counted
within its allowance, a reward claimed for points, a voucher issued,
redeemed once, expired or reactivated."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from club.dates import today_for
from club.models import Store
from club.selectors import store_in_market
from core.actors import Actor
from core.errors import (
    BenefitNotAvailable,
    NotFound,
    RewardNotAvailable,
    ValidationFailed,
    VoucherNotValid,
    VoucherUsed,
)
from core.jobs import JobResult, Progress, job, run_batches
from core.outbox import outbox_add
from loyalty.ledger import book_to_spend
from loyalty.models import LedgerEntry, Purchase
from loyalty.selectors import member_summary
from members.models import Member
from rewards.codes import code_new, code_normalize
from rewards.models import Benefit, BenefitUsage, BenefitUse, Reward, Voucher
from rewards.periods import period_bounds
from rewards.selectors import Offer, localized_name, reward_offer, reward_refusal, voucher_view

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
    if (
        benefit.member_lists.exists()
        and not benefit.member_lists.filter(members__pk=member.pk).exists()
    ):
        return f"Benefit {benefit.code} is for selected members only."
    if benefit.channel != Benefit.Channel.BOTH and benefit.channel != store.channel:
        where = "in store" if benefit.channel == Benefit.Channel.STORE else "online"
        return f"Benefit {benefit.code} is used {where} only, not at {store.code}."
    return None


def benefit_use(
    *,
    actor: Actor,
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
    member.check_active()
    market = member.market
    store = store_in_market(market=market, store_code=store_code)
    reason = _ineligible_reason(benefit, member, store)
    if reason:
        raise BenefitNotAvailable(reason)
    start, next_start = period_bounds(
        benefit.period,
        time_zone=market.time_zone,
        first_day_of_week=market.first_day_of_week,
        now=now,
    )
    with transaction.atomic():
        count = _count_use(member_id=member.pk, benefit=benefit, period_start=start, now=now)
        if count is None:
            when = f"until {next_start.isoformat()}" if next_start else "for good"
            raise BenefitNotAvailable(
                f"Benefit {benefit.code} is used up {when}: "
                f"{benefit.allowance} per {benefit.period}."
            )
        use = BenefitUse.objects.create(
            member_id=member.pk,
            benefit=benefit,
            period_start=start,
            used_at=now,
            store=store,
            channel=store.channel,
            api_client_id=actor.api_client_id,
        )
        remaining = None if benefit.allowance is None else max(benefit.allowance - count, 0)
        outbox_add(
            topic="benefit.used",
            dedupe_key=f"benefit.used:{use.pk}",
            member_id=member.pk,
            payload={
                "use_id": use.pk,
                "member_number": member.member_number,
                "benefit": benefit.code,
                "kind": benefit.kind,
                "store_code": store.code,
                "channel": store.channel,
                "used_at": now.isoformat(),
                "period_start": start.isoformat(),
                "remaining": remaining,
            },
        )
    return {
        "code": benefit.code,
        "name": localized_name(
            benefit.name, benefit.names if isinstance(benefit.names, dict) else {}, member.language
        ),
        "kind": benefit.kind,
        "remaining": remaining,
        "period": benefit.period,
        "resets_on": next_start.isoformat() if next_start else None,
        "used_at": now.isoformat(),
        "store_code": store.code,
        "member_number": member.member_number,
    }


# --- rewards and vouchers ----------------------------------------------------

REACTIVATION_MIN_DAYS = 30  # a reactivated voucher is valid at least this long again
_CODE_ATTEMPTS = 5


def _stock_take(reward_id: int) -> bool:
    """Take one from the reward's stock in one statement: a parallel claim
    waits for the row, then checks the condition again, so the stock never
    goes below zero. An unlimited reward (stock NULL) always has one."""
    return (
        Reward.objects.filter(Q(stock__isnull=True) | Q(stock__gt=0), pk=reward_id).update(
            stock=F("stock") - 1
        )
        == 1
    )


def _voucher_create(
    *,
    member: Member,
    reward: Reward,
    offer: Offer,
    source: str,
    now: datetime,
    points_cost: int = 0,
    dedupe_key: str | None = None,
    ledger_entry: LedgerEntry | None = None,
    actor: Actor | None = None,
) -> Voucher:
    """Take one from the stock and insert the voucher, inside the caller's
    transaction. RewardNotAvailable when out of stock."""
    if not _stock_take(reward.pk):
        raise RewardNotAvailable(f"Reward {reward.code} is out of stock.")
    for attempt in range(_CODE_ATTEMPTS):
        try:
            with transaction.atomic():  # a savepoint: a clash of codes is retried
                voucher = Voucher.objects.create(
                    code=code_new(),
                    member=member,
                    reward=reward,
                    source=source,
                    points_cost=points_cost,
                    value_amount=offer.value_amount,
                    value_currency=offer.value_currency,
                    value_text=offer.value_text,
                    issued_at=now,
                    expires_at=now + timedelta(days=reward.validity_days),
                    dedupe_key=dedupe_key,
                    ledger_entry=ledger_entry,
                    api_client_id=actor.api_client_id if actor else None,
                )
        except IntegrityError:
            if dedupe_key is not None and Voucher.objects.filter(dedupe_key=dedupe_key).exists():
                raise  # issued by a parallel call: voucher_issue answers with that one
            if attempt == _CODE_ATTEMPTS - 1:
                raise
            continue
        break
    outbox_add(
        topic="voucher.issued",
        dedupe_key=f"voucher.issued:{voucher.pk}",
        member_id=member.pk,
        payload={
            "member_number": member.member_number,
            "reward": reward.code,
            "source": source,
            "points_cost": points_cost,
            "issued_at": now.isoformat(),
            "expires_at": voucher.expires_at.isoformat(),
        },
    )
    return voucher


def _dedupe_hit(dedupe_key: str, member: Member) -> Voucher | None:
    existing = Voucher.objects.filter(dedupe_key=dedupe_key).first()
    if existing is not None and existing.member_id != member.pk:
        raise ValidationFailed(
            f"dedupe_key {dedupe_key} already issued a voucher to another member.",
            errors={"dedupe_key": ["Used for another member."]},
        )
    return existing


def voucher_issue(
    *,
    member: Member,
    reward: Reward,
    source: str,
    dedupe_key: str | None = None,
    now: datetime | None = None,
) -> Voucher:
    """Give the member a voucher of `reward` without spending points (a
    mission's reward, a gift, staff goodwill). Runs inside the caller's
    transaction if there is one.

    With a `dedupe_key`, the voucher is issued once per key: a second call,
    or a parallel one, answers with the voucher the first issued. Eligibility
    (tier, market, dates) is the caller's decision; the stock is not:
    a stocked reward that has none left raises RewardNotAvailable, and then
    nothing of this call remains.
    """
    now = now or timezone.now()
    if source not in Voucher.Source.values:
        raise ValidationFailed(
            f"Unknown voucher source {source}.", errors={"source": ["Unknown source."]}
        )
    if dedupe_key is not None:
        existing = _dedupe_hit(dedupe_key, member)
        if existing is not None:
            return existing
    offer = reward_offer(reward, member.market)
    try:
        with transaction.atomic():  # the stock and the voucher together, or neither
            return _voucher_create(
                member=member,
                reward=reward,
                offer=offer,
                source=source,
                now=now,
                dedupe_key=dedupe_key,
            )
    except IntegrityError:
        if dedupe_key is not None:
            existing = _dedupe_hit(dedupe_key, member)
            if existing is not None:
                return existing
        raise


def reward_claim(
    *,
    actor: Actor,
    member: Member,
    reward_code: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Spend the member's points on a reward: the points (first-expiring
    lots first), one from the stock and the voucher, in one transaction.

    Refuses with not_found (no such reward), member_inactive,
    reward_not_available (not offered now, not in the member's market or
    tier, out of stock) or insufficient_points; then nothing changes.
    Answers the voucher's fields with `member`, as the member stands after.
    """
    now = now or timezone.now()
    reward = Reward.objects.filter(code=reward_code).first()
    if reward is None:
        raise NotFound(f"No reward {reward_code}.")
    member.check_active()
    market = member.market
    offer = reward_offer(reward, market)
    refusal = reward_refusal(
        reward,
        member=member,
        offer=offer,
        now=now,
        tier_ids=set(reward.tiers.values_list("pk", flat=True)),
        market_ids=set(reward.markets.values_list("pk", flat=True)),
    )
    if refusal is not None:
        raise RewardNotAvailable(refusal[1])
    cost = offer.points_cost
    with transaction.atomic():
        book = book_to_spend(member_id=member.pk, today=today_for(market, now), points=cost)
        account = book.account
        entry = book.book_entry(
            LedgerEntry.Kind.REDEEM,
            -cost,
            reference=f"reward:{reward.code}",
            api_client_id=actor.api_client_id,
        )
        book.take(entry, cost)
        voucher = _voucher_create(
            member=member,
            reward=reward,
            offer=offer,
            source=Voucher.Source.CLAIM,
            now=now,
            points_cost=cost,
            ledger_entry=entry,
            actor=actor,
        )
        book.save()
        summary = member_summary(
            member=member,
            balance=account.balance,
            pending=account.pending,
            expiring=book.expiring(),
        )
    voucher.member = member
    return {**voucher_view(voucher, now=now), "member": summary}


def voucher_redeem(
    *,
    actor: Actor,
    code: str,
    store_code: str,
    receipt_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Use a voucher once, in a store of its member's market.

    The voucher row is locked: of any number of parallel redemptions one
    succeeds, the others answer voucher_used. An expired or cancelled
    voucher answers voucher_not_valid; a code this client cannot see,
    not_found.
    """
    now = now or timezone.now()
    normalized = code_normalize(code)
    if normalized is None:
        raise NotFound("No such voucher.")
    with transaction.atomic():
        voucher = (
            Voucher.objects.select_for_update(of=("self",))
            .select_related("reward", "member__market", "member__tier", "redeemed_store")
            .filter(code=normalized)
            .first()
        )
        if (
            voucher is None
            or not actor.sees_market(voucher.member.market_id)
            or voucher.member.status == Member.Status.ERASED
        ):
            raise NotFound("No such voucher.")
        member = voucher.member
        if voucher.status == Voucher.Status.REDEEMED:
            store = voucher.redeemed_store
            raise VoucherUsed(
                f"Voucher was redeemed on {voucher.redeemed_at:%Y-%m-%d %H:%M} UTC"
                f" in store {store.code if store else '?'}."
            )
        if voucher.status != Voucher.Status.ISSUED:
            raise VoucherNotValid(f"Voucher is {voucher.status}.")
        if voucher.expires_at <= now:
            raise VoucherNotValid(f"Voucher expired at {voucher.expires_at.isoformat()}.")
        member.check_active()
        store = store_in_market(market=member.market, store_code=store_code)
        voucher.status = Voucher.Status.REDEEMED
        voucher.redeemed_at = now
        voucher.redeemed_store = store
        voucher.redeemed_receipt_id = receipt_id
        voucher.save(
            update_fields=["status", "redeemed_at", "redeemed_store", "redeemed_receipt_id"]
        )
        outbox_add(
            topic="voucher.redeemed",
            dedupe_key=f"voucher.redeemed:{voucher.pk}:{int(voucher.reactivated)}",
            member_id=member.pk,
            payload={
                "member_number": member.member_number,
                "reward": voucher.reward.code,
                "store_code": store.code,
                "receipt_id": receipt_id,
                "redeemed_at": now.isoformat(),
            },
        )
    return voucher_view(voucher, now=now)


@job(title="vouchers: expire", schedule=crontab(minute="15"), unit="vouchers")
def vouchers_expire(
    *,
    as_of: datetime,
    batch_size: int = 5000,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Mark the issued vouchers whose time has run out as expired.

    A batch at a time, each batch one UPDATE. A voucher done no longer
    matches, so a second run finds nothing and a run stopped half way resumes."""

    def batch() -> int | None:
        due = Voucher.objects.filter(status=Voucher.Status.ISSUED, expires_at__lte=as_of)
        with transaction.atomic():
            # The conditions again on the outer statement: a voucher redeemed
            # meanwhile is re-checked after its lock, and left alone.
            done = due.filter(
                pk__in=due.order_by("expires_at", "id").values("id")[:batch_size]
            ).update(status=Voucher.Status.EXPIRED)
        return done or None

    return run_batches("vouchers_expire", [batch], progress, max_batches)


def voucher_reactivate(*, voucher: Voucher, actor: Actor, now: datetime | None = None) -> Voucher:
    """Give a redeemed voucher back when the purchase it paid is fully
    returned: once per voucher. The purchase is the one recorded with the
    store and receipt id of the redemption. The voucher keeps its expiry,
    but is valid at least REACTIVATION_MIN_DAYS from now.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            Voucher.objects.select_for_update(of=("self",))
            .select_related("member", "reward", "redeemed_store")
            .get(pk=voucher.pk)
        )
        if locked.reactivated:
            raise ValidationFailed("This voucher was already reactivated once.")
        if locked.status != Voucher.Status.REDEEMED:
            raise ValidationFailed(
                f"Only a redeemed voucher can be reactivated; this one is {locked.status}."
            )
        store = locked.redeemed_store
        purchase = Purchase.objects.filter(
            store_id=locked.redeemed_store_id, receipt_id=locked.redeemed_receipt_id
        ).first()
        if purchase is None:
            raise ValidationFailed(
                f"No purchase with receipt {locked.redeemed_receipt_id} of store "
                f"{store.code if store else '?'} is recorded."
            )
        if purchase.returned_amount < purchase.total:
            raise ValidationFailed(
                f"Receipt {purchase.receipt_id} is not fully returned "
                f"({purchase.returned_amount} of {purchase.total})."
            )
        note = (
            f"Redeemed {locked.redeemed_at:%Y-%m-%d %H:%M} UTC in {store.code}, "
            f"receipt {locked.redeemed_receipt_id}; fully returned."
        )
        locked.status = Voucher.Status.ISSUED
        locked.reactivated = True
        locked.reactivated_at = now
        locked.reactivated_by_id = actor.staff_user_id
        locked.reactivation_note = note[:255]
        locked.redeemed_at = None
        locked.redeemed_store = None
        locked.redeemed_receipt_id = ""
        locked.expires_at = max(locked.expires_at, now + timedelta(days=REACTIVATION_MIN_DAYS))
        locked.save(
            update_fields=[
                "status",
                "reactivated",
                "reactivated_at",
                "reactivated_by",
                "reactivation_note",
                "redeemed_at",
                "redeemed_store",
                "redeemed_receipt_id",
                "expires_at",
            ]
        )
        outbox_add(
            topic="voucher.reactivated",
            dedupe_key=f"voucher.reactivated:{locked.pk}",
            member_id=locked.member_id,
            payload={
                "member_number": locked.member.member_number,
                "reward": locked.reward.code,
                "receipt_id": purchase.receipt_id,
                "store_code": store.code if store else None,
                "expires_at": locked.expires_at.isoformat(),
            },
        )
    return locked
