"""Ledger primitives that every points-changing service shares.

All of them run inside the caller's transaction, on an account the caller
has locked (`account_lock`). The account's row lock guards its lots too:
every writer of lots, request or job, locks the account first, and then the
object the call is about (purchase, redemption). One order, no deadlock.

Invariants that `check_ledger` proves:
  (a) balance + pending == the sum of the member's entries
  (b) pending == the remaining points of the member's unmatured lots
  (c) max(balance, 0) == the remaining points of the matured lots
      (a negative balance is a debt: matured points pay it back at once)
  (d) a lot's remaining == its points plus the sum of its movements
"""

from __future__ import annotations

import calendar
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from club.models import Market
from core.errors import InsufficientPoints, MemberInactive
from loyalty.models import LedgerEntry, Lot, LotMovement, PointsAccount


def expiry_for(market: Market, earned_on: date) -> date:
    """The end of the month N months after the month the points were earned."""
    months = earned_on.year * 12 + (earned_on.month - 1) + market.points_validity_months
    year, month = divmod(months, 12)
    return date(year, month + 1, calendar.monthrange(year, month + 1)[1])


def account_lock(member_id: int, *, open_only: bool = True) -> PointsAccount:
    """The member's account, locked until the transaction ends (one plain
    statement: every points-changing call of the API starts here). A closed
    account (an erased member) refuses with member_inactive: read under the
    lock, so a call that checked the member just before an erasure
    committed cannot book on the closed account afterwards."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT balance, pending, closed_at FROM loyalty_pointsaccount WHERE member_id = %s"
            + (" FOR UPDATE" if connection.features.has_select_for_update else ""),
            [member_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise PointsAccount.DoesNotExist(f"no account for member {member_id}")
    if open_only and row[2] is not None:
        raise MemberInactive("The member's points are closed: the member was erased.")
    return PointsAccount.from_db(
        connection.alias, ["member_id", "balance", "pending"], [member_id, row[0], row[1]]
    )


def account_close(*, account: PointsAccount, now: datetime) -> None:
    """Close the account for good (its points were taken to zero first)."""
    PointsAccount.objects.filter(pk=account.pk).update(closed_at=now, updated_at=now)


LOCK_TIMEOUT = "5s"


def accounts_lock_many(member_ids: list[int]) -> None:
    """Lock many accounts at once, in member order (the lock order), for a
    job's batch; waits at most LOCK_TIMEOUT for a request holding one."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute(
            "SELECT member_id FROM loyalty_pointsaccount WHERE member_id = ANY(%s) "
            "ORDER BY member_id FOR UPDATE",
            [member_ids],
        )


def members_in_debt(member_ids: list[int]) -> set[int]:
    return set(
        PointsAccount.objects.filter(member_id__in=member_ids, balance__lt=0).values_list(
            "member_id", flat=True
        )
    )


# A purchase's points, when no debt waits for them: its `earn` entry and,
# when its campaigns added some, its `bonus` entry (their ids drawn from the
# sequence up front), a lot for each and the account, in one statement.
# _BOOKED_SQL is the entries and lots, shared with _PURCHASE_SQL below.
_BOOKED_SQL = """
WITH ids AS MATERIALIZED (
    SELECT nextval('{sequence}'::regclass) AS earn_id, nextval('{sequence}'::regclass) AS bonus_id
), booked AS MATERIALIZED (
    SELECT earn_id AS entry_id, 'earn' AS kind, %(points)s AS points FROM ids WHERE %(points)s > 0
    UNION ALL
    SELECT bonus_id, 'bonus', %(bonus)s FROM ids WHERE %(bonus)s > 0
), entry AS (
    INSERT INTO loyalty_ledgerentry (id, member_id, kind, points, created_at, reference,
                                     expires_on, reason, purchase_id)
    SELECT entry_id, %(member)s, kind, points, %(now)s, %(reference)s, %(expires_on)s,
           '', %(purchase)s FROM booked
), lot AS (
    INSERT INTO loyalty_lot (member_id, entry_id, points, remaining, available_on, expires_on,
                             matured, purchase_id)
    SELECT %(member)s, entry_id, points, points, %(available_on)s, %(expires_on)s,
           %(matured)s, %(purchase)s FROM booked ORDER BY entry_id
)
"""
_EARN_SQL = (
    _BOOKED_SQL
    + """
UPDATE loyalty_pointsaccount
SET balance = balance + %(to_balance)s, pending = pending + %(to_pending)s, updated_at = %(now)s
WHERE member_id = %(member)s
"""
)
_sequence: dict[str, str] = {}


def _booked_params(
    account: PointsAccount,
    *,
    points: int,
    bonus: int,
    reference: str,
    expires_on: date,
    available_on: date,
    matured: bool,
    purchase_id: object,
) -> dict[str, Any]:
    """The parameters of _BOOKED_SQL and the account's update after it."""
    total = points + bonus
    return {
        "member": account.member_id,
        "points": points,
        "bonus": bonus,
        "now": timezone.now(),
        "reference": reference,
        "expires_on": expires_on,
        "available_on": available_on,
        "matured": matured,
        "purchase": purchase_id,
        "to_balance": total if matured else 0,
        "to_pending": 0 if matured else total,
    }


def _account_add(account: PointsAccount, total: int, *, matured: bool) -> None:
    """The in-memory account as the statement left the row."""
    if matured:
        account.balance += total
    else:
        account.pending += total


def _entry_sequence(cursor: Any) -> str:
    """The ledger entry id sequence's name, resolved once per process
    rather than once per statement."""
    if "entry" not in _sequence:
        cursor.execute("SELECT pg_get_serial_sequence('loyalty_ledgerentry', 'id')")
        _sequence["entry"] = str(cursor.fetchone()[0])
    return _sequence["entry"]


def earn_book(
    *,
    book: Book,
    points: int,
    reference: str,
    available_on: date,
    expires_on: date,
    matured: bool,
    purchase_id: object,
    bonus: int = 0,
) -> None:
    """A purchase's earned points: an `earn` entry and its lot, and its
    campaigns' `bonus` points, when any, in an entry and a lot of their own
    (pending and expiring alike; bonus points are never qualifying). In one
    statement when nothing else is due (no debt to pay from them,
    Postgres), else through the book, lot by lot."""
    if points < 0 or bonus < 0:
        raise ValueError("a purchase earns 0 points or more")
    account = book.account
    if connection.vendor != "postgresql" or (matured and account.balance < 0):
        for kind, amount in ((LedgerEntry.Kind.EARN, points), (LedgerEntry.Kind.BONUS, bonus)):
            if not amount:
                continue
            entry = book.book_entry(
                kind,
                amount,
                reference=reference,
                expires_on=expires_on,
                purchase_id=purchase_id,
            )
            book.add_lot(
                entry,
                available_on=available_on,
                expires_on=expires_on,
                matured=matured,
                purchase_id=purchase_id,
            )
        book.save()
        return
    total = points + bonus
    with connection.cursor() as cursor:
        cursor.execute(
            _EARN_SQL.replace("{sequence}", _entry_sequence(cursor)),
            _booked_params(
                account,
                points=points,
                bonus=bonus,
                reference=reference,
                expires_on=expires_on,
                available_on=available_on,
                matured=matured,
                purchase_id=purchase_id,
            ),
        )
    _account_add(account, total, matured=matured)


# A purchase's whole booking after the account's lock, in one round trip:
# the earn statement above, its base points counted in their month
# (QualifyingMonth), and the reads its answer needs. The reads see the
# statement's snapshot, taken after the lock was granted (every writer of
# the member's lots and months holds it), so they miss only what this very
# statement writes: the caller adds that (`PurchaseEarned`).
_PURCHASE_SQL = (
    _BOOKED_SQL
    + """, account AS (
    UPDATE loyalty_pointsaccount
    SET balance = balance + %(to_balance)s, pending = pending + %(to_pending)s,
        updated_at = %(now)s
    WHERE member_id = %(member)s AND %(points)s + %(bonus)s > 0
), counted AS (
    INSERT INTO loyalty_qualifyingmonth (member_id, month, points)
    SELECT %(member)s, %(month)s, %(base)s WHERE %(base)s <> 0
    ON CONFLICT (member_id, month) DO UPDATE
    SET points = loyalty_qualifyingmonth.points + excluded.points
), qualifying AS (
    SELECT COALESCE(SUM(points), 0) + %(base_in_window)s AS total FROM loyalty_qualifyingmonth
    WHERE member_id = %(member)s AND month >= %(window_from)s AND month <= %(window_to)s
    HAVING %(tier_check)s
)
SELECT q.total,
       (SELECT t.id FROM club_tier t WHERE t.rank > %(rank)s AND t.threshold <= q.total
        ORDER BY t.rank DESC LIMIT 1),
       n.next_on,
       (SELECT SUM(l.remaining) FROM loyalty_lot l
        WHERE l.member_id = %(member)s AND l.remaining > 0 AND l.expires_on = n.next_on)
FROM (SELECT MIN(expires_on) AS next_on FROM loyalty_lot
      WHERE member_id = %(member)s AND remaining > 0) n
LEFT JOIN qualifying q ON TRUE
"""
)


@dataclass(frozen=True)
class PurchaseEarned:
    """What `purchase_earn_book` read besides booking: the member's
    qualifying points after the purchase and the tier they reach above the
    current one (both None when the tier was not checked), and the next
    expiry of the open lots, this purchase's included."""

    qualifying: int | None
    tier_id: int | None
    expiring: tuple[int | None, date | None]


def purchase_earn_book(
    *,
    book: Book,
    points: int,
    bonus: int,
    base: int,
    reference: str,
    available_on: date,
    expires_on: date,
    matured: bool,
    purchase_id: object,
    month: date,
    window: tuple[date, date],
    tier_check: bool,
    rank: int,
) -> PurchaseEarned:
    """A purchase's points as `earn_book` books them, its `base` points
    counted in `month` as `qualifying_add` counts them, and, when
    `tier_check`, the qualifying total over `window` (first and last
    month) and the highest tier above `rank` it reaches, as
    `tier_upgrade_check` reads them: one statement (PostgreSQL, no debt to
    pay from the new points: the caller checks `purchase_fused_ok`)."""
    if points < 0 or bonus < 0:
        raise ValueError("a purchase earns 0 points or more")
    account = book.account
    total = points + bonus
    with connection.cursor() as cursor:
        cursor.execute(
            _PURCHASE_SQL.replace("{sequence}", _entry_sequence(cursor)),
            {
                **_booked_params(
                    account,
                    points=points,
                    bonus=bonus,
                    reference=reference,
                    expires_on=expires_on,
                    available_on=available_on,
                    matured=matured,
                    purchase_id=purchase_id,
                ),
                "month": month,
                "base": base,
                "base_in_window": base if window[0] <= month <= window[1] else 0,
                "window_from": window[0],
                "window_to": window[1],
                "tier_check": tier_check,
                "rank": rank,
            },
        )
        qualifying, tier_id, next_on, next_points = cursor.fetchone()
    _account_add(account, total, matured=matured)
    # The statement's own lots are not in its snapshot: add them.
    if total and (next_on is None or expires_on < next_on):
        next_on, next_points = expires_on, total
    elif total and expires_on == next_on:
        next_points = int(next_points) + total
    return PurchaseEarned(
        qualifying=None if qualifying is None else int(qualifying),
        tier_id=tier_id,
        expiring=(None, None) if next_on is None else (int(next_points), next_on),
    )


def purchase_fused_ok(account: PointsAccount, *, matured: bool) -> bool:
    """Whether a purchase may book in one statement: on PostgreSQL, unless
    its points are available at once and a debt waits for them (the Book
    pays a debt lot by lot), or LOJAL_PURCHASE_ONE_STATEMENT is off."""
    return (
        purchase_one_statement()
        and connection.vendor == "postgresql"
        and not (matured and account.balance < 0)
    )


def purchase_one_statement() -> bool:
    return bool(getattr(settings, "LOJAL_PURCHASE_ONE_STATEMENT", True))


@dataclass
class Book:
    """The member's open lots, locked, and the changes made to them in
    this transaction; `save()` writes them in a few statements."""

    account: PointsAccount
    lots: list[Lot]
    movements: list[LotMovement] = field(default_factory=list)
    touched: dict[int, Lot] = field(default_factory=dict)

    @classmethod
    def blank(cls, account: PointsAccount) -> Book:
        """For calls that only add a lot (a purchase): the member's other
        lots are not read, however many there are. `expiring()` is then
        not known here; members.selectors.points_expiring reads it."""
        return cls(account=account, lots=[])

    @classmethod
    def open(cls, account: PointsAccount) -> Book:
        lots = list(
            Lot.objects.filter(member_id=account.member_id, remaining__gt=0).order_by(
                "expires_on", "id"
            )
        )
        return cls(account=account, lots=lots)

    def book_entry(self, kind: str, points: int, **fields: Any) -> LedgerEntry:
        """A new entry of this member's ledger (entries are never changed)."""
        return LedgerEntry.objects.create(
            member_id=self.account.member_id, kind=kind, points=points, **fields
        )

    def _move(self, lot: Lot, entry: LedgerEntry | None, kind: str, points: int) -> None:
        lot.remaining += points
        self.touched[lot.pk] = lot
        self.movements.append(LotMovement(lot=lot, entry=entry, kind=kind, points=points))

    def settle(self, today: date, *, expire_only: Collection[int] | None = None) -> None:
        """Mature the lots whose day has come and expire those past their
        date, so that what is spent now is exactly what may be spent today.
        `expire_only` limits the expiry to those lots (a job's batch)."""
        for lot in self.lots:
            if not lot.matured and lot.available_on <= today:
                self.mature(lot)
        for lot in self.lots:
            if (
                lot.matured
                and lot.remaining > 0
                and lot.expires_on < today
                and (expire_only is None or lot.pk in expire_only)
            ):
                entry = self.book_entry(
                    LedgerEntry.Kind.EXPIRE,
                    -lot.remaining,
                    expires_on=lot.expires_on,
                    reference=f"lot:{lot.pk}",
                )
                self.account.balance -= lot.remaining
                self._move(lot, entry, LotMovement.Kind.SPEND, -lot.remaining)

    def mature(self, lot: Lot) -> None:
        lot.matured = True
        self.touched[lot.pk] = lot
        self.account.pending -= lot.remaining
        self.credit_available([lot], lot.remaining)

    def credit_available(self, lots: list[Lot], points: int) -> None:
        """`points` just became available in `lots`: a debt takes its share first."""
        debt = max(0, -self.account.balance)
        self.account.balance += points
        for lot in sorted(lots, key=lambda item: (item.expires_on, item.pk or 0)):
            if debt <= 0:
                break
            pay = min(debt, lot.remaining)
            if pay:
                self._move(lot, None, LotMovement.Kind.DEBT, -pay)
                debt -= pay

    def spendable(self) -> int:
        return sum(lot.remaining for lot in self.lots if lot.matured)

    def spend(self, entry: LedgerEntry, points: int, *, first: Lot | None = None) -> int:
        """Take up to `points` from matured lots, the first-expiring first
        (from `first` before all others). Returns what was taken; the
        caller decides whether the rest becomes a debt."""
        order = [lot for lot in self.lots if lot.matured and lot is not first]
        if first is not None and first.matured:
            order.insert(0, first)
        taken = 0
        for lot in order:
            if taken >= points:
                break
            take = min(points - taken, lot.remaining)
            if take:
                self._move(lot, entry, LotMovement.Kind.SPEND, -take)
                taken += take
        return taken

    def take_pending(self, entry: LedgerEntry, lot: Lot, points: int) -> int:
        take = min(points, lot.remaining)
        if take:
            self._move(lot, entry, LotMovement.Kind.SPEND, -take)
            self.account.pending -= take
        return take

    def add_lot(
        self,
        entry: LedgerEntry,
        *,
        available_on: date,
        expires_on: date,
        matured: bool,
        purchase_id: object | None = None,
    ) -> Lot:
        lot = Lot.objects.create(
            member_id=self.account.member_id,
            entry=entry,
            points=entry.points,
            remaining=entry.points,
            available_on=available_on,
            expires_on=expires_on,
            matured=matured,
            purchase_id=purchase_id,
        )
        self.lots.append(lot)
        if matured:
            self.credit_available([lot], entry.points)
        else:
            self.account.pending += entry.points
        return lot

    def take(self, entry: LedgerEntry, points: int, *, first: Lot | None = None) -> None:
        """Take `points` from the balance: from the matured lots, `first`
        then the first-expiring; what they do not hold becomes a debt.
        Calls that must not overspend check with book_to_spend first."""
        self.spend(entry, points, first=first)
        self.account.balance -= points

    def reverse_purchase(
        self, *, points: int, purchase_id: object, reference: str, return_id: object
    ) -> LedgerEntry:
        """A return's entry: the purchase's pending points first (its earned
        lot, then its campaigns' bonus lot), then from the balance (this
        purchase's lot first, then the first-expiring); what was already
        spent becomes a debt."""
        entry = self.book_entry(
            LedgerEntry.Kind.RETURN,
            -points,
            reference=reference,
            purchase_id=purchase_id,
            return_record_id=return_id,
        )
        own = sorted(
            (lot for lot in self.lots if lot.purchase_id == purchase_id), key=lambda lot: lot.pk
        )
        left = points
        for lot in own:
            if left and not lot.matured:
                left -= self.take_pending(entry, lot, left)
        if left:
            self.take(entry, left, first=next((lot for lot in own if lot.matured), None))
        return entry

    def restore(self, spent_entry: LedgerEntry, entry: LedgerEntry) -> None:
        """Give back, lot by lot, what `spent_entry` took (a cancelled redemption)."""
        spent = list(
            LotMovement.objects.filter(entry=spent_entry, kind=LotMovement.Kind.SPEND).values_list(
                "lot_id", "points"
            )
        )
        known = {lot.pk: lot for lot in self.lots}
        missing = [lot_id for lot_id, _ in spent if lot_id not in known]
        if missing:  # lots spent to zero are not among the open ones
            for lot in Lot.objects.filter(pk__in=missing).order_by("id"):
                known[lot.pk] = lot
                self.lots.append(lot)
        restored = []
        for lot_id, points in spent:
            lot = known[lot_id]
            self._move(lot, entry, LotMovement.Kind.RESTORE, -points)
            restored.append(lot)
        self.credit_available(restored, -sum(points for _, points in spent))

    def save(self) -> None:
        if self.movements:
            LotMovement.objects.bulk_create(self.movements)
        changed = [lot for lot in self.touched.values() if lot.pk is not None]
        if len(changed) == 1:
            lot = changed[0]
            Lot.objects.filter(pk=lot.pk).update(remaining=lot.remaining, matured=lot.matured)
        elif changed:
            Lot.objects.bulk_update(changed, ["remaining", "matured"])
        PointsAccount.objects.filter(pk=self.account.pk).update(
            balance=self.account.balance,
            pending=self.account.pending,
            updated_at=timezone.now(),
        )

    def expiring(self) -> tuple[int | None, date | None]:
        """The next expiry among the open lots, as the member object shows it."""
        open_lots = [lot for lot in self.lots if lot.remaining > 0]
        if not open_lots:
            return None, None
        on = min(lot.expires_on for lot in open_lots)
        return sum(lot.remaining for lot in open_lots if lot.expires_on == on), on


def book_to_spend(*, member_id: int, today: date, points: int) -> Book:
    """Lock the member's account, bring its lots up to `today` and make sure
    `points` can be spent now: what every spending call starts with."""
    book = Book.open(account_lock(member_id))
    book.settle(today)
    spendable = min(book.spendable(), max(book.account.balance, 0))
    if points > spendable:
        raise InsufficientPoints(f"Balance {spendable} is below {points}.")
    return book


# --- bulk forms, for the jobs ------------------------------------------------
#
# Each books a whole batch in one statement. The caller holds the accounts'
# locks (accounts_lock_many, in member order), and has sent the members in
# debt through the Book (a debt is paid from new points lot by lot).

_MATURE_SQL = """
WITH lots AS (
    UPDATE loyalty_lot SET matured = TRUE
    WHERE id = ANY(%(lot_ids)s) AND NOT matured
    RETURNING member_id, remaining
), per_member AS (
    SELECT member_id, SUM(remaining) AS points FROM lots GROUP BY member_id
), accounts AS (
    UPDATE loyalty_pointsaccount a
    SET pending = a.pending - p.points, balance = a.balance + p.points, updated_at = %(now)s
    FROM per_member p WHERE a.member_id = p.member_id
)
SELECT COUNT(*) FROM lots
"""


def lots_mature_bulk(lot_ids: list[int], *, now: datetime) -> int:
    """Pending lots become available: their points move from the accounts'
    pending to their balance. Lots matured already are skipped. Answers how
    many lots matured."""
    with connection.cursor() as cursor:
        cursor.execute(_MATURE_SQL, {"lot_ids": lot_ids, "now": now})
        return int(cursor.fetchone()[0])


def lots_mature_emptied(lot_ids: list[int]) -> int:
    """Lots fully returned while pending have nothing left to move: they are
    only marked matured (the per-member path, which opens the lots with
    points left, does not see them)."""
    return Lot.objects.filter(pk__in=lot_ids, matured=False, remaining=0).update(matured=True)


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
), accounts AS (
    UPDATE loyalty_pointsaccount a
    SET balance = a.balance - p.balance, pending = a.pending - p.pending, updated_at = %(now)s
    FROM per_member p WHERE a.member_id = p.member_id
)
SELECT COUNT(*) FROM lots
"""


def lots_expire_bulk(lot_ids: list[int], *, today: date, now: datetime) -> int:
    """Lots past their date (`expires_on` before `today`) lose what remains:
    an `expire` entry and a movement each, and the accounts lose it from
    their balance (or pending). Lots expired already are skipped. Answers
    how many lots expired."""
    with connection.cursor() as cursor:
        cursor.execute(
            _EXPIRE_SQL.replace("{sequence}", _entry_sequence(cursor)),
            {"lot_ids": lot_ids, "today": today, "now": now},
        )
        return int(cursor.fetchone()[0])


def entry_ids_draw(count: int) -> list[int]:
    """Ids for `count` entries to come, drawn from the ledger's sequence: for
    a caller that records what an entry is for (a gift, say) before
    `bonus_bulk` books it."""
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT nextval('{_entry_sequence(cursor)}'::regclass) FROM generate_series(1, %s)",
            [count],
        )
        return [int(row[0]) for row in cursor.fetchall()]


_BONUS_SQL = """
WITH booked AS MATERIALIZED (
    SELECT * FROM unnest(%(entry_ids)s::bigint[], %(member_ids)s::bigint[],
                         %(references)s::text[]) AS b(entry_id, member_id, reference)
), entries AS (
    INSERT INTO loyalty_ledgerentry (id, member_id, kind, points, created_at, reference,
                                     expires_on, reason)
    SELECT entry_id, member_id, 'bonus', %(points)s, %(now)s, reference, %(expires_on)s,
           %(reason)s
    FROM booked
), lots AS (
    INSERT INTO loyalty_lot (member_id, entry_id, points, remaining, available_on, expires_on,
                             matured)
    SELECT member_id, entry_id, %(points)s, %(points)s, %(today)s, %(expires_on)s, TRUE
    FROM booked
), per_member AS (
    SELECT member_id, COUNT(*) AS entries FROM booked GROUP BY member_id
), accounts AS (
    UPDATE loyalty_pointsaccount a
    SET balance = a.balance + p.entries * %(points)s, updated_at = %(now)s
    FROM per_member p WHERE a.member_id = p.member_id
)
SELECT COUNT(*) FROM booked
"""


def bonus_bulk(
    *,
    entry_ids: list[int],
    member_ids: list[int],
    references: list[str],
    points: int,
    reason: str,
    today: date,
    expires_on: date,
    now: datetime,
) -> int:
    """A `bonus` of `points` for each (entry id, member, reference): the
    entry under that id (entry_ids_draw), its matured lot available from
    `today` until `expires_on`, and the points on the balance, like
    `points_bonus` for one member. Answers how many were booked."""
    if not entry_ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            _BONUS_SQL,
            {
                "entry_ids": entry_ids,
                "member_ids": member_ids,
                "references": references,
                "points": points,
                "reason": reason[:255],
                "today": today,
                "expires_on": expires_on,
                "now": now,
            },
        )
        return int(cursor.fetchone()[0])


_OPENING_SQL = """
WITH opening AS MATERIALIZED (
    SELECT o.member_id, o.points, o.expires_on,
           CASE WHEN o.points > 0 THEN nextval('{sequence}'::regclass) END AS entry_id
    FROM unnest(%(member_ids)s::bigint[], %(points)s::bigint[], %(expires_on)s::date[])
         AS o(member_id, points, expires_on)
), accounts AS (
    INSERT INTO loyalty_pointsaccount (member_id, balance, pending, updated_at)
    SELECT member_id, points, 0, %(now)s FROM opening
), entries AS (
    INSERT INTO loyalty_ledgerentry (id, member_id, kind, points, created_at, reference,
                                     expires_on, reason)
    SELECT entry_id, member_id, 'adjust', points, %(now)s, %(reference)s, expires_on, %(reason)s
    FROM opening WHERE entry_id IS NOT NULL
), lots AS (
    INSERT INTO loyalty_lot (member_id, entry_id, points, remaining, available_on, expires_on,
                             matured)
    SELECT member_id, entry_id, points, points, %(today)s, expires_on, TRUE
    FROM opening WHERE entry_id IS NOT NULL
)
SELECT COUNT(*) FROM opening WHERE entry_id IS NOT NULL
"""


def accounts_open_bulk(
    *,
    member_ids: list[int],
    points: list[int],
    expires_on: list[date | None],
    reason: str,
    reference: str,
    today: date,
    now: datetime,
) -> int:
    """New members' points accounts, each with its opening balance (an
    import): for a member with points, an `adjust` entry and its matured
    lot, available from `today` until its `expires_on`. Members without
    points get an empty account. In the caller's transaction (the accounts
    are new: nobody else can hold them). Answers how many entries were
    booked."""
    if not member_ids:
        return 0
    if any(p < 0 for p in points) or any(p > 0 and e is None for p, e in zip(points, expires_on)):
        raise ValueError("an opening balance is 0 or more, and points need an expiry")
    with connection.cursor() as cursor:
        cursor.execute(
            _OPENING_SQL.replace("{sequence}", _entry_sequence(cursor)),
            {
                "member_ids": member_ids,
                "points": points,
                "expires_on": expires_on,
                "reason": reason[:255],
                "reference": reference[:128],
                "today": today,
                "now": now,
            },
        )
        return int(cursor.fetchone()[0])


def days(n: int) -> timedelta:
    return timedelta(days=n)
