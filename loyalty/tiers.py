"""Tiered status: qualifying points, upgrades, overrides and the evaluation.

Qualifying points are base points (before multipliers), net of returns, in
the current calendar month and the eleven before it (market time), kept per
month in `QualifyingMonth` with each purchase and return. Crossing a
threshold upgrades at once and the tier is kept 12 months; when that runs
out, `tiers_evaluate` moves the member at most one level down (or renews).
A staff override wins until its end date; then the evaluation takes over,
from what the member qualifies for.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime

from celery.schedules import crontab
from django.db import connection, transaction
from django.utils import timezone

from club.dates import local_date, market_days
from club.models import Market, Tier
from core.actors import Actor
from core.errors import ValidationFailed
from core.jobs import Batch, JobResult, Keyset, Progress, job, run_batches, set_based
from core.outbox import outbox_add, outbox_add_json
from loyalty.models import TierChange
from members.models import Member

BATCH = 5000


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def window_start(today: date) -> date:
    """The first month of the rolling twelve."""
    return add_months(month_start(today), -11)


def validity_from(today: date) -> date:
    return add_months(today, 12)


def qualifying_add(*, member_id: int, on: date, points: int) -> None:
    """Count `points` (negative for a return) in the month of `on`. Runs in
    the caller's transaction, under the member's account lock."""
    if not points:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO loyalty_qualifyingmonth (member_id, month, points) VALUES (%s, %s, %s) "
            "ON CONFLICT (member_id, month) DO UPDATE "
            "SET points = loyalty_qualifyingmonth.points + excluded.points",
            [member_id, month_start(on), points],
        )


def qualifying_points(*, member_id: int, today: date) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(points), 0) FROM loyalty_qualifyingmonth "
            "WHERE member_id = %s AND month >= %s AND month <= %s",
            [member_id, window_start(today), month_start(today)],
        )
        return int(cursor.fetchone()[0])


def _record(
    member: Member,
    old: Tier,
    new: Tier,
    cause: str,
    *,
    reason: str = "",
    qualifying: int | None = None,
    staff_user_id: int | None = None,
) -> None:
    change = TierChange.objects.create(
        member=member,
        from_tier=old,
        to_tier=new,
        cause=cause,
        reason=reason,
        qualifying_points=qualifying,
        valid_until=member.tier_valid_until,
        staff_user_id=staff_user_id,
    )
    if old.pk != new.pk:
        outbox_add(
            topic="tier.changed",
            dedupe_key=f"tier.changed:{change.pk}",
            member_id=member.pk,
            payload={
                "member_number": member.member_number,
                "from": old.code,
                "to": new.code,
                "cause": cause,
                "valid_until": member.tier_valid_until.isoformat()
                if member.tier_valid_until
                else None,
            },
        )


def tier_upgrade_check(*, member: Member, today: date) -> bool:
    """After a purchase: upgrade at once when a higher threshold is crossed.
    Runs in the purchase's transaction; answers whether the tier changed."""
    if member.tier_override_until is not None and member.tier_override_until >= today:
        return False  # the override wins until its end
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT q.total, (SELECT t.id FROM club_tier t WHERE t.rank > %s "
            "                 AND t.threshold <= q.total ORDER BY t.rank DESC LIMIT 1) "
            "FROM (SELECT COALESCE(SUM(points), 0) AS total FROM loyalty_qualifyingmonth "
            "      WHERE member_id = %s AND month >= %s AND month <= %s) q",
            [member.tier.rank, member.pk, window_start(today), month_start(today)],
        )
        qualifying, tier_id = cursor.fetchone()
    return tier_upgrade_apply(member=member, today=today, qualifying=qualifying, tier_id=tier_id)


def tier_upgrade_apply(
    *, member: Member, today: date, qualifying: int, tier_id: int | None
) -> bool:
    """The upgrade `tier_upgrade_check` decided (or a caller that read the
    same figures in its own statement): to `tier_id`, when there is one."""
    if tier_id is None:
        return False
    old, new = member.tier, Tier.objects.get(pk=tier_id)
    member.tier, member.tier_valid_until, member.tier_override_until = (
        new,
        validity_from(today),
        None,
    )
    Member.objects.filter(pk=member.pk).update(
        tier=new, tier_valid_until=member.tier_valid_until, tier_override_until=None
    )
    _record(member, old, new, TierChange.Cause.PURCHASE, qualifying=int(qualifying))
    return True


def tier_override(
    *,
    member: Member,
    tier: Tier,
    reason: str,
    until: date,
    actor: Actor,
    now: datetime | None = None,
) -> Member:
    """Staff set a tier with a reason and an end date; it wins until then."""
    today = local_date(member.market, now or timezone.now())
    if not reason.strip():
        raise ValidationFailed("A reason is required.", errors={"reason": ["Required."]})
    if until < today:
        raise ValidationFailed("The end date has passed.", errors={"until": ["Must not be past."]})
    with transaction.atomic():
        locked = (
            Member.objects.select_for_update().select_related("tier", "market").get(pk=member.pk)
        )
        old = locked.tier
        locked.tier, locked.tier_valid_until, locked.tier_override_until = tier, until, until
        locked.save(update_fields=["tier", "tier_valid_until", "tier_override_until", "updated_at"])
        _record(
            locked,
            old,
            tier,
            TierChange.Cause.STAFF,
            reason=reason,
            qualifying=qualifying_points(member_id=locked.pk, today=today),
            staff_user_id=actor.staff_user_id,
        )
    return locked


# The evaluation of one batch, in one statement: qualifying points over the
# window, the tier they reach, at most one level down from an earned tier
# (from an override, straight to what is earned), renewal for 12 months
# unless the result is the base tier, and the history; it answers how many
# members it evaluated and the events of the changes that moved a tier (as
# one JSON array), which the outbox then records (core/outbox.py).
_EVALUATE_SQL = """
WITH batch AS (
    SELECT m.id, m.member_number, m.tier_id, t.rank AS old_rank, m.tier_override_until,
           COALESCE((SELECT SUM(q.points) FROM loyalty_qualifyingmonth q
                     WHERE q.member_id = m.id AND q.month >= %(window)s
                       AND q.month <= %(month)s), 0) AS qualifying
    FROM members_member m JOIN club_tier t ON t.id = m.tier_id
    WHERE m.id = ANY(%(ids)s) AND m.tier_valid_until < %(today)s
      AND (m.tier_override_until IS NULL OR m.tier_override_until < %(today)s)
    FOR UPDATE OF m
), decided AS (
    SELECT b.*,
           (SELECT MAX(t.rank) FROM club_tier t WHERE t.threshold <= b.qualifying) AS earned_rank
    FROM batch b
), target AS (
    SELECT d.*,
           CASE WHEN d.tier_override_until IS NOT NULL THEN COALESCE(d.earned_rank, 0)
                ELSE GREATEST(COALESCE(d.earned_rank, 0), d.old_rank - 1) END AS new_rank
    FROM decided d
), resolved AS (
    SELECT tg.id, tg.member_number, tg.tier_id AS old_tier, nt.id AS new_tier, nt.rank AS new_rank,
           tg.qualifying,
           CASE WHEN nt.rank = (SELECT MIN(rank) FROM club_tier) THEN NULL
                ELSE %(valid_until)s::date END AS valid_until
    FROM target tg JOIN club_tier nt ON nt.rank = tg.new_rank
), updated AS (
    UPDATE members_member m
    SET tier_id = r.new_tier, tier_valid_until = r.valid_until, tier_override_until = NULL,
        updated_at = %(now)s
    FROM resolved r WHERE m.id = r.id
    RETURNING m.id
), history AS (
    INSERT INTO loyalty_tierchange (member_id, from_tier_id, to_tier_id, cause, reason,
                                    qualifying_points, valid_until, changed_at)
    SELECT id, old_tier, new_tier,
           CASE WHEN old_tier = new_tier THEN 'renewal' ELSE 'evaluation' END, '',
           qualifying, valid_until, %(now)s
    FROM resolved
    RETURNING id, member_id, from_tier_id, to_tier_id, valid_until
)
SELECT (SELECT COUNT(*) FROM updated),
       json_agg(json_build_object(
           'topic', 'tier.changed', 'dedupe_key', 'tier.changed:' || h.id,
           'member_id', h.member_id,
           'payload', json_build_object('member_number', r.member_number, 'from', ft.code,
                                        'to', tt.code, 'cause', 'evaluation',
                                        'valid_until', h.valid_until)))::text
FROM history h JOIN resolved r ON r.id = h.member_id
JOIN club_tier ft ON ft.id = h.from_tier_id JOIN club_tier tt ON tt.id = h.to_tier_id
WHERE h.from_tier_id <> h.to_tier_id
"""


def _evaluate_portable(ids: list[int], today: date) -> int:
    """The same decision member by member (SQLite, the embedded default)."""
    tiers = list(Tier.objects.order_by("rank"))
    done = 0
    for member in (
        Member.objects.select_for_update()
        .select_related("tier")
        .filter(pk__in=ids, tier_valid_until__lt=today)
    ):
        if member.tier_override_until is not None and member.tier_override_until >= today:
            continue
        qualifying = qualifying_points(member_id=member.pk, today=today)
        earned = max((t.rank for t in tiers if t.threshold <= qualifying), default=0)
        rank = earned if member.tier_override_until else max(earned, member.tier.rank - 1)
        old, new = member.tier, next(t for t in tiers if t.rank == rank)
        member.tier = new
        member.tier_valid_until = None if rank == tiers[0].rank else validity_from(today)
        member.tier_override_until = None
        member.save(update_fields=["tier", "tier_valid_until", "tier_override_until", "updated_at"])
        _record(
            member,
            old,
            new,
            TierChange.Cause.RENEWAL if old.pk == new.pk else TierChange.Cause.EVALUATION,
            qualifying=qualifying,
        )
        done += 1
    return done


@job(
    title="tiers: evaluate expired validity",
    schedule=crontab(minute="30"),
    unit="members",
    help="Re-evaluate members whose tier validity has run out (at most one level down).",
)
def tiers_evaluate(
    *,
    as_of: datetime,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Members whose tier validity has run out are re-evaluated on their
    last 12 months: they keep or renew their tier, or drop one level."""

    def batches(market: Market, today: date) -> Batch:
        after = Keyset(member="pk")

        def batch() -> int | None:
            rows = after.page(
                Member.objects.filter(market=market, tier_valid_until__lt=today),
                "tier_valid_until",
                batch_size,
            )
            if not rows:
                return None
            ids = [member_id for member_id, _ in rows]
            with transaction.atomic():
                if not set_based():
                    return _evaluate_portable(ids, today)
                now = timezone.now()
                with connection.cursor() as cursor:
                    cursor.execute(
                        _EVALUATE_SQL,
                        {
                            "ids": ids,
                            "today": today,
                            "window": window_start(today),
                            "month": month_start(today),
                            "valid_until": validity_from(today),
                            "now": now,
                        },
                    )
                    done, events = cursor.fetchone()
                if events:
                    outbox_add_json(events, now=now)
                return int(done)

        return batch

    return run_batches(
        "tiers_evaluate", (batches(m, d) for m, d in market_days(as_of)), progress, max_batches
    )
