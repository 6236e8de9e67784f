"""The jobs that age points: maturing, expiry, hold release, expiry notices.

Each job is set-based: it takes a batch of thousands of rows, locks the
accounts they belong to (the lock order of loyalty/ledger.py: accounts
first, in member order), then books the whole batch in one SQL statement
and commits. Rows it has done no longer match its query, so a second run
finds nothing, and a run killed half way resumes where it stopped. Two runs
at once wait for each other's account locks and then find the rows done.

On SQLite (the embedded default of `make run`) the same batches go through
the per-member ledger code instead; it is slower and books the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from club.dates import local_date
from club.dates import market_days
from core.jobs import JobResult, Keyset, Progress, run_batches, set_based
from loyalty.ledger import Book, accounts_lock_many, members_in_debt
from club.models import Market
from loyalty.models import Lot, PointsAccount, Redemption
from loyalty.services import redemption_release
from core.outbox import outbox_add

BATCH = 5000
LOCK_TIMEOUT = "5s"
NOTICE_DAYS = 30

# --- maturing -----------------------------------------------------------

_MATURE_SQL = """
WITH lots AS (
    UPDATE loyalty_lot SET matured = TRUE
    WHERE id = ANY(%(lot_ids)s) AND NOT matured
    RETURNING member_id, remaining
), per_member AS (
    SELECT member_id, SUM(remaining) AS points FROM lots GROUP BY member_id
)
UPDATE loyalty_pointsaccount a
SET pending = a.pending - p.points, balance = a.balance + p.points, updated_at = %(now)s
FROM per_member p WHERE a.member_id = p.member_id
"""


def points_mature(*, as_of: datetime | None = None, batch_size: int = BATCH,
                  progress: Progress | None = None, max_batches: int | None = None) -> JobResult:
    """Pending lots whose `available_on` has come (in the market's time zone)
    become available."""
    as_of = as_of or timezone.now()

    def batches(market: Market, today: date) -> Callable[[], int]:
        after = Keyset()

        def batch() -> int:
            with transaction.atomic():
                rows = after.page(
                    Lot.objects.filter(matured=False, available_on__lte=today,
                                       member__market=market),
                    "available_on", batch_size,
                )
                if not rows:
                    return 0
                member_ids = sorted({m for _, m in rows})
                lot_ids = [i for i, _ in rows]
                wanted = set(lot_ids)

                def mature(book: Book) -> None:
                    for lot in book.lots:
                        if lot.pk in wanted and not lot.matured:
                            book.mature(lot)

                if not set_based():
                    _per_member(member_ids, mature)
                    _mature_empty(lot_ids)
                    return len(rows)
                accounts_lock_many(member_ids)
                # A debt is paid from maturing points lot by lot: the few
                # members in debt take the per-member path.
                debtors = members_in_debt(member_ids)
                if debtors:
                    _per_member(sorted(debtors), mature, lock=False)
                with connection.cursor() as cursor:
                    cursor.execute(_MATURE_SQL, {"lot_ids": lot_ids, "now": timezone.now()})
                return len(rows)
        return batch

    return run_batches("points_mature", (batches(m, d) for m, d in market_days(as_of)), progress, max_batches)


def _mature_empty(lot_ids: list[int]) -> None:
    """Lots fully returned while pending have nothing left to move."""
    Lot.objects.filter(pk__in=lot_ids, matured=False, remaining=0).update(matured=True)


def _per_member(member_ids: list[int], apply: Callable[[Book], Any], *, lock: bool = True) -> None:
    for member_id in member_ids:
        account = (PointsAccount.objects.select_for_update() if lock else PointsAccount.objects).get(
            member_id=member_id)
        book = Book.open(account)
        apply(book)
        book.save()


# --- expiry ---------------------------------------------------------------

# Each lot draws its entry's id from the sequence up front, so the entry and
# the lot's movement are written without joining one back to the other.
_EXPIRE_SQL = """
WITH lots AS MATERIALIZED (
    SELECT id, member_id, remaining, matured, expires_on,
           nextval('{sequence}'::regclass) AS entry_id
    FROM loyalty_lot
    WHERE id = ANY(%(lot_ids)s) AND remaining > 0 AND expires_on < %(today)s
), entries AS (
    INSERT INTO loyalty_ledgerentry (id, member_id, kind, points, created_at, reference,
                                     expires_on, reason)
    SELECT entry_id, member_id, 'expire', -remaining, %(now)s, 'lot:' || id, expires_on, ''
    FROM lots
), movements AS (
    INSERT INTO loyalty_lotmovement (lot_id, entry_id, kind, points, created_at)
    SELECT id, entry_id, 'spend', -remaining, %(now)s FROM lots
), emptied AS (
    UPDATE loyalty_lot SET remaining = 0 FROM lots WHERE loyalty_lot.id = lots.id
), per_member AS (
    SELECT member_id,
           SUM(CASE WHEN matured THEN remaining ELSE 0 END) AS balance,
           SUM(CASE WHEN matured THEN 0 ELSE remaining END) AS pending
    FROM lots GROUP BY member_id
)
UPDATE loyalty_pointsaccount a
SET balance = a.balance - p.balance, pending = a.pending - p.pending, updated_at = %(now)s
FROM per_member p WHERE a.member_id = p.member_id
"""


def _entry_sequence(cursor: Any) -> str:
    """The ledger entry id sequence's name, resolved once per batch rather
    than once per row."""
    cursor.execute("SELECT pg_get_serial_sequence('loyalty_ledgerentry', 'id')")
    return str(cursor.fetchone()[0])


def points_expire(*, as_of: datetime | None = None, batch_size: int = BATCH,
                  progress: Progress | None = None, max_batches: int | None = None,
                  sql: bool | None = None) -> JobResult:
    """Lots past `expires_on` (a date in the market's time zone: a lot is
    spendable through that day) lose what remains, an `expire` entry each."""
    as_of = as_of or timezone.now()
    use_sql = set_based() if sql is None else sql

    def batches(market: Market, today: date) -> Callable[[], int]:
        after = Keyset()

        def batch() -> int:
            with transaction.atomic():
                rows = after.page(
                    Lot.objects.filter(remaining__gt=0, expires_on__lt=today, member__market=market),
                    "expires_on", batch_size,
                )
                if not rows:
                    return 0
                member_ids = sorted({m for _, m in rows})
                if not use_sql:
                    # settle() expires exactly the lots past their date.
                    _per_member(member_ids, lambda book: book.settle(today))
                    return len(rows)
                accounts_lock_many(member_ids)
                with connection.cursor() as cursor:
                    cursor.execute(_EXPIRE_SQL.replace("{sequence}", _entry_sequence(cursor)),
                                   {"lot_ids": [i for i, _ in rows], "today": today,
                                    "now": timezone.now()})
                return len(rows)
        return batch

    return run_batches("points_expire", (batches(m, d) for m, d in market_days(as_of)), progress, max_batches)


# --- holds ----------------------------------------------------------------

def holds_release(*, as_of: datetime | None = None, batch_size: int = 500,
                  progress: Progress | None = None, max_batches: int | None = None) -> JobResult:
    """Holds past their expiry that nobody captured or cancelled: their
    points go back to the lots they came from."""
    as_of = as_of or timezone.now()
    result = JobResult("holds_release")
    while max_batches is None or result.batches < max_batches:
        with transaction.atomic():
            rows = list(
                Redemption.objects.filter(status=Redemption.Status.HELD, expires_at__lte=as_of)
                .order_by("expires_at", "id").values_list("id", "member_id")[:batch_size]
            )
            if not rows:
                break
            released = 0
            # Holds live minutes, so a batch is small: the ledger code that
            # restores lot by lot is reused rather than written again in SQL.
            for member_id in sorted({m for _, m in rows}):
                account = PointsAccount.objects.select_for_update().get(member_id=member_id)
                book = Book.open(account)
                for redemption in Redemption.objects.select_for_update().filter(
                    pk__in=[i for i, m in rows if m == member_id], status=Redemption.Status.HELD
                ):
                    redemption_release(book=book, redemption=redemption,
                                       status=Redemption.Status.EXPIRED)
                    released += 1
            result.rows += released
            result.batches += 1
            if progress:
                progress(released)
    return result


# --- expiry notices ---------------------------------------------------------

_NOTICE_SQL = """
INSERT INTO core_outboxevent (topic, dedupe_key, member_id, payload, created_at)
SELECT 'points.expiring_soon',
       'points.expiring_soon:' || l.id || ':' || l.expires_on,
       l.member_id,
       json_build_object('member_number', m.member_number, 'points', l.remaining,
                         'expires_on', l.expires_on, 'lot_id', l.id)::jsonb,
       %(now)s
FROM loyalty_lot l JOIN members_member m ON m.id = l.member_id
WHERE l.id > %(after)s AND l.id <= %(upto)s AND l.remaining > 0
  AND l.expires_on >= %(today)s AND l.expires_on <= %(until)s AND m.market_id = %(market)s
ON CONFLICT (dedupe_key) DO NOTHING
"""


def points_expiry_notices(*, as_of: datetime | None = None, batch_size: int = 20_000,
                          progress: Progress | None = None) -> JobResult:
    """One `points.expiring_soon` notice per lot and expiry date, for lots
    expiring in the next 30 days; never two, however often it runs."""
    as_of = as_of or timezone.now()
    result = JobResult("points_expiry_notices")
    for market in Market.objects.order_by("code"):
        today = local_date(market, as_of)
        until = today + timedelta(days=NOTICE_DAYS)
        open_lots = Lot.objects.filter(remaining__gt=0, expires_on__gte=today,
                                       expires_on__lte=until, member__market=market)
        if not set_based():
            for lot in open_lots.select_related("member").iterator(chunk_size=batch_size):
                outbox_add(topic="points.expiring_soon",
                           dedupe_key=f"points.expiring_soon:{lot.pk}:{lot.expires_on}",
                           member_id=lot.member_id,
                           payload={"member_number": lot.member.member_number,
                                    "points": lot.remaining,
                                    "expires_on": lot.expires_on.isoformat(), "lot_id": lot.pk})
                result.rows += 1
            continue
        bounds = open_lots.order_by().values_list("id", flat=True)
        low = bounds.order_by("id").first()
        high = bounds.order_by("-id").first()
        if low is None:
            continue
        after = low - 1
        while after < high:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_NOTICE_SQL, {"after": after, "upto": after + batch_size,
                                             "today": today, "until": until,
                                             "market": market.pk, "now": timezone.now()})
                written = cursor.rowcount
            after += batch_size
            result.rows += written
            result.batches += 1
            if progress:
                progress(written)
    return result
