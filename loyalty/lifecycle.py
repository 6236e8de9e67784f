"""The jobs that age points: maturing, expiry, hold release, expiry notices.

Each job is set-based: it takes a batch of thousands of rows, locks the
accounts they belong to (the lock order of loyalty/ledger.py: accounts
first, in member order), then books the whole batch in one statement (the
bulk forms of loyalty/ledger.py; the outbox's of core/outbox.py) and
commits. Rows it has done no longer match its query, so a second run
finds nothing, and a run killed half way resumes where it stopped. Two runs
at once wait for each other's account locks and then find the rows done.

On SQLite (the embedded default of `make run`) the same batches go through
the per-member ledger code instead; it is slower and books the same.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from celery.schedules import crontab
from django.db import transaction
from django.utils import timezone

from club.dates import market_days
from club.models import Market
from core.jobs import Batch, IdSlices, JobResult, Keyset, Progress, job, run_batches, set_based
from core.outbox import Event, outbox_add_many, outbox_add_select
from loyalty.ledger import (
    Book,
    accounts_lock_many,
    lots_expire_bulk,
    lots_mature_bulk,
    lots_mature_emptied,
    members_in_debt,
)
from loyalty.models import Lot, PointsAccount, Redemption
from loyalty.services import redemption_release

BATCH = 5000
NOTICE_DAYS = 30


def _per_member(member_ids: list[int], apply: Callable[[Book], Any], *, lock: bool = True) -> None:
    for member_id in member_ids:
        account = (
            PointsAccount.objects.select_for_update() if lock else PointsAccount.objects
        ).get(member_id=member_id)
        book = Book.open(account)
        apply(book)
        book.save()


# --- maturing -----------------------------------------------------------


# Hourly, so that every market's local midnight is met within the hour.
@job(title="points: mature pending", schedule=crontab(minute="5"), unit="lots")
def points_mature(
    *,
    as_of: datetime,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Pending lots whose `available_on` has come (in the market's time zone)
    become available."""

    def batches(market: Market, today: date) -> Batch:
        after = Keyset()

        def batch() -> int | None:
            with transaction.atomic():
                rows = after.page(
                    Lot.objects.filter(
                        matured=False, available_on__lte=today, member__market=market
                    ),
                    "available_on",
                    batch_size,
                )
                if not rows:
                    return None
                member_ids = sorted({m for _, m in rows})
                lot_ids = [i for i, _ in rows]
                wanted = set(lot_ids)

                def mature(book: Book) -> None:
                    for lot in book.lots:
                        if lot.pk in wanted and not lot.matured:
                            book.mature(lot)

                if not set_based():
                    _per_member(member_ids, mature)
                    lots_mature_emptied(lot_ids)
                    return len(rows)
                accounts_lock_many(member_ids)
                # A debt is paid from maturing points lot by lot: the few
                # members in debt take the per-member path.
                debtors = members_in_debt(member_ids)
                if debtors:
                    _per_member(sorted(debtors), mature, lock=False)
                lots_mature_bulk(lot_ids, now=timezone.now())
                return len(rows)

        return batch

    return run_batches(
        "points_mature", (batches(m, d) for m, d in market_days(as_of)), progress, max_batches
    )


# --- expiry ---------------------------------------------------------------

# One `points.expired` per lot that loses points, written before the lots
# expire, in the batch's transaction, under its account locks.
_EXPIRED_SELECT = """
SELECT 'points.expired', 'points.expired:' || l.id, l.member_id,
       json_build_object('member_number', m.member_number, 'points', l.remaining,
                         'expires_on', l.expires_on, 'lot_id', l.id)::jsonb
FROM loyalty_lot l JOIN members_member m ON m.id = l.member_id
WHERE l.id = ANY(%(lot_ids)s) AND l.remaining > 0 AND l.expires_on < %(today)s
"""


def _expired_events(lot_ids: list[int], today: date) -> None:
    if set_based():
        outbox_add_select(_EXPIRED_SELECT, {"lot_ids": lot_ids, "today": today})
        return
    outbox_add_many(
        Event(
            topic="points.expired",
            dedupe_key=f"points.expired:{lot.pk}",
            member_id=lot.member_id,
            payload={
                "member_number": lot.member.member_number,
                "points": lot.remaining,
                "expires_on": lot.expires_on.isoformat(),
                "lot_id": lot.pk,
            },
        )
        for lot in Lot.objects.filter(
            id__in=lot_ids, remaining__gt=0, expires_on__lt=today
        ).select_related("member")
    )


@job(title="points: expire", schedule=crontab(minute="10"), unit="lots")
def points_expire(
    *,
    as_of: datetime,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    max_batches: int | None = None,
    sql: bool | None = None,
) -> JobResult:
    """Lots past `expires_on` (a date in the market's time zone: a lot is
    spendable through that day) lose what remains, an `expire` entry each."""
    use_sql = set_based() if sql is None else sql

    def batches(market: Market, today: date) -> Batch:
        after = Keyset()

        def batch() -> int | None:
            with transaction.atomic():
                rows = after.page(
                    Lot.objects.filter(
                        remaining__gt=0, expires_on__lt=today, member__market=market
                    ),
                    "expires_on",
                    batch_size,
                )
                if not rows:
                    return None
                member_ids = sorted({m for _, m in rows})
                lot_ids = [i for i, _ in rows]
                if not use_sql:
                    # settle() expires exactly the batch's lots past their date.
                    wanted = set(lot_ids)
                    _expired_events(lot_ids, today)
                    _per_member(member_ids, lambda book: book.settle(today, expire_only=wanted))
                    return len(rows)
                accounts_lock_many(member_ids)
                _expired_events(lot_ids, today)
                lots_expire_bulk(lot_ids, today=today, now=timezone.now())
                return len(rows)

        return batch

    return run_batches(
        "points_expire", (batches(m, d) for m, d in market_days(as_of)), progress, max_batches
    )


# --- holds ----------------------------------------------------------------


@job(title="holds: release expired", schedule=60, unit="holds")
def holds_release(
    *,
    as_of: datetime,
    batch_size: int = 500,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Holds past their expiry that nobody captured or cancelled: their
    points go back to the lots they came from."""

    def batch() -> int | None:
        with transaction.atomic():
            rows = list(
                Redemption.objects.filter(status=Redemption.Status.HELD, expires_at__lte=as_of)
                .order_by("expires_at", "id")
                .values_list("id", "member_id")[:batch_size]
            )
            if not rows:
                return None
            released = 0
            # Holds live minutes, so a batch is small: the ledger code that
            # restores lot by lot is reused rather than written again in SQL.
            for member_id in sorted({m for _, m in rows}):
                account = PointsAccount.objects.select_for_update().get(member_id=member_id)
                book = Book.open(account)
                for redemption in Redemption.objects.select_for_update().filter(
                    pk__in=[i for i, m in rows if m == member_id], status=Redemption.Status.HELD
                ):
                    redemption_release(
                        book=book, redemption=redemption, status=Redemption.Status.EXPIRED
                    )
                    released += 1
            return released

    return run_batches("holds_release", [batch], progress, max_batches)


# --- expiry notices ---------------------------------------------------------

_NOTICES_SELECT = """
SELECT 'points.expiring_soon',
       'points.expiring_soon:' || l.id || ':' || l.expires_on,
       l.member_id,
       json_build_object('member_number', m.member_number, 'points', l.remaining,
                         'expires_on', l.expires_on, 'lot_id', l.id)::jsonb
FROM loyalty_lot l JOIN members_member m ON m.id = l.member_id
WHERE l.id > %(after)s AND l.id <= %(upto)s AND l.remaining > 0
  AND l.expires_on >= %(today)s AND l.expires_on <= %(until)s AND m.market_id = %(market)s
"""


@job(title="points: expiry notices", schedule=crontab(minute="20", hour="6"), unit="notices")
def points_expiry_notices(
    *,
    as_of: datetime,
    batch_size: int = 20_000,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """One `points.expiring_soon` notice per lot and expiry date, for lots
    expiring in the next 30 days; never two, however often it runs."""

    def batches(market: Market, today: date) -> Batch:
        until = today + timedelta(days=NOTICE_DAYS)
        open_lots = Lot.objects.filter(
            remaining__gt=0, expires_on__gte=today, expires_on__lte=until, member__market=market
        )
        slices = IdSlices(open_lots, batch_size)

        def batch() -> int | None:
            span = slices.next()
            if span is None:
                return None
            after, upto = span
            with transaction.atomic():
                if set_based():
                    return outbox_add_select(
                        _NOTICES_SELECT,
                        {
                            "after": after,
                            "upto": upto,
                            "today": today,
                            "until": until,
                            "market": market.pk,
                        },
                    )
                return outbox_add_many(
                    Event(
                        topic="points.expiring_soon",
                        dedupe_key=f"points.expiring_soon:{lot.pk}:{lot.expires_on}",
                        member_id=lot.member_id,
                        payload={
                            "member_number": lot.member.member_number,
                            "points": lot.remaining,
                            "expires_on": lot.expires_on.isoformat(),
                            "lot_id": lot.pk,
                        },
                    )
                    for lot in open_lots.filter(id__gt=after, id__lte=upto).select_related("member")
                )

        return batch

    return run_batches(
        "points_expiry_notices",
        (batches(m, d) for m, d in market_days(as_of)),
        progress,
        max_batches,
    )
