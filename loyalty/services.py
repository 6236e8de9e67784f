"""Every write that changes a member's points.

Each service owns its transaction, locks the member's account first (see
loyalty/ledger.py for the lock order and the invariants), raises typed
errors that carry their API code, and answers with the body the API sends.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from club.dates import local_date, occurred_at_check, today_for
from club.models import Store
from club.selectors import store_in_market
from core.actors import Actor
from core.errors import (
    HoldExpired,
    InsufficientPoints,  # noqa: F401  raised through book_to_spend; callers name it here
    NotFound,
    ReceiptConflict,
    ReturnExceedsPurchase,
    ValidationFailed,
)
from core.outbox import Event, outbox_add, outbox_add_after
from loyalty.ledger import (
    Book,
    account_close,
    account_lock,
    book_to_spend,
    days,
    earn_book,
    expiry_for,
    purchase_earn_book,
    purchase_fused_ok,
    purchase_one_statement,
)
from loyalty.models import LedgerEntry, PointsAccount, Purchase, Redemption, Return
from loyalty.selectors import member_summary
from loyalty.tiers import (
    month_start,
    qualifying_add,
    tier_upgrade_apply,
    tier_upgrade_check,
    window_start,
)
from members.models import Member
from members.selectors import visible_member

CENT = Decimal("0.01")
MAX_POINTS = 10_000_000


@dataclass(frozen=True)
class Line:
    sku: str
    amount: Decimal
    quantity: int = 1
    category: str = ""


def receipt_hash(payload: dict[str, Any]) -> str:
    """What makes two posts of one receipt the same: a digest of its body."""
    return hashlib.sha256(
        orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)
    ).hexdigest()


def lines_total_check(total: Decimal, lines: list[Line]) -> None:
    if sum((line.amount for line in lines), Decimal(0)) != total:
        raise ValidationFailed(
            "total must equal the sum of the line amounts.",
            errors={"total": ["Does not equal the sum of the line amounts."]},
        )


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def _share(points: int, returned: Decimal, of: Decimal) -> int:
    """The part of a purchase's `points` that returning `returned` of its
    qualifying amount `of` takes back: all of them once all is returned."""
    if not of:
        return 0
    if returned >= of:
        return points
    return _floor(points * returned / of)


@dataclass
class PurchaseBooking:
    """What booking a receipt's points did, for the caller that composes
    the rest of the purchase (missions) and then records it."""

    purchase_id: uuid.UUID
    points: int  # earned, before campaign bonuses
    bonus_points: int
    base_points: int
    qualifying_amount: Decimal
    available_on: date
    expires_on: date
    matured: bool
    tier_changed: bool
    book: Book
    qualifying_categories: set[str]
    # The next expiry after the booking, when the booking read it (None: read it).
    expiring: tuple[int | None, date | None] | None = None


def account_open(*, member: Member) -> PointsAccount:
    """The new member's points account, empty: every ledger call locks it."""
    return PointsAccount.objects.create(member=member)


def purchase_book(
    *,
    member: Member,
    receipt_id: str,
    occurred_at: datetime,
    lines: list[Line],
    now: datetime,
    bonus: Callable[[uuid.UUID], int] | None = None,
) -> PurchaseBooking:
    """Book a receipt's earned points (pending for the market's return
    window), count its qualifying points and upgrade the tier at once when
    a threshold is crossed. In the caller's transaction: it locks the
    member's account, which stays locked until the caller commits.

    `bonus(purchase_id)`, when given, is asked under the account's lock for
    the campaign bonus points of this purchase (the caller's campaigns
    claim them); they are booked with the earned points, in a `bonus`
    entry of their own, and never count as qualifying."""
    market = member.market
    excluded = set(market.excluded_categories or ())
    qualifying = sum((line.amount for line in lines if line.category not in excluded), Decimal(0))
    base_points = _floor(qualifying * market.earn_rate)
    points = _floor(qualifying * market.earn_rate * member.tier.multiplier)
    earned_on = local_date(market, occurred_at)
    available_on = earned_on + days(market.return_window_days)
    matured = available_on <= local_date(market, now)
    expires_on = expiry_for(market, earned_on)
    purchase_id = uuid.uuid4()
    # The purchase row goes in last (purchase_save), carrying the answer for
    # replays; the foreign keys of the entry and lot to it are checked at commit.
    account = account_lock(member.pk)
    book = Book.blank(account)  # a debt is paid from the new lots alone
    bonus_points = bonus(purchase_id) if bonus is not None else 0
    today = local_date(market, now)
    # what the answer says whichever form books it
    booked = dict(
        purchase_id=purchase_id,
        points=points,
        bonus_points=bonus_points,
        base_points=base_points,
        qualifying_amount=qualifying,
        available_on=available_on,
        expires_on=expires_on,
        matured=matured,
        qualifying_categories=_qualifying_categories(lines, excluded),
    )
    if purchase_fused_ok(account, matured=matured):
        # The same rows and figures as below, in one round trip.
        earned = purchase_earn_book(
            book=book,
            points=points,
            bonus=bonus_points,
            base=base_points,
            reference=receipt_id,
            available_on=available_on,
            expires_on=expires_on,
            matured=matured,
            purchase_id=purchase_id,
            month=month_start(earned_on),
            window=(window_start(today), month_start(today)),
            tier_check=bool(base_points) and not _override_holds(member, today),
            rank=member.tier.rank,
        )
        tier_changed = earned.qualifying is not None and tier_upgrade_apply(
            member=member, today=today, qualifying=earned.qualifying, tier_id=earned.tier_id
        )
        return PurchaseBooking(
            **booked, tier_changed=tier_changed, book=book, expiring=earned.expiring
        )
    if points or bonus_points:
        earn_book(
            book=book,
            points=points,
            bonus=bonus_points,
            reference=receipt_id,
            available_on=available_on,
            expires_on=expires_on,
            matured=matured,
            purchase_id=purchase_id,
        )
    tier_changed = False
    if base_points:
        qualifying_add(member_id=member.pk, on=earned_on, points=base_points)
        tier_changed = tier_upgrade_check(member=member, today=today)
    return PurchaseBooking(**booked, tier_changed=tier_changed, book=book)


def _override_holds(member: Member, today: date) -> bool:
    """A staff override wins over upgrades until its end (tier_upgrade_check)."""
    return member.tier_override_until is not None and member.tier_override_until >= today


def _qualifying_categories(lines: list[Line], excluded: set[str]) -> set[str]:
    return {line.category for line in lines if line.category not in excluded and line.amount > 0}


_PURCHASE_INSERT_SQL = """
INSERT INTO loyalty_purchase (id, member_id, store_id, receipt_id, channel, occurred_at, currency,
                              total, qualifying_amount, lines, points_earned, base_points,
                              returned_amount, returned_qualifying_amount, points_reversed,
                              base_points_reversed, body_hash, response, imported, created_at)
VALUES (%(id)s, %(member)s, %(store)s, %(receipt_id)s, %(channel)s, %(occurred_at)s,
        %(currency)s, %(total)s, %(qualifying_amount)s, %(lines)s::jsonb, %(points_earned)s,
        %(base_points)s, 0, 0, 0, 0, %(body_hash)s, %(response)s::jsonb, FALSE, %(now)s)
"""


def purchase_save(
    *,
    booking: PurchaseBooking,
    member: Member,
    store: Store,
    receipt_id: str,
    channel: str,
    occurred_at: datetime,
    currency: str,
    total: Decimal,
    lines: list[Line],
    body_hash: str,
    response: dict[str, Any],
    event: Event | None = None,
) -> None:
    """The purchase as a record, with the answer a replay gets, and `event`
    in the outbox (on PostgreSQL both in one statement). Raises
    IntegrityError on a receipt already recorded (the caller replays)."""
    recorded_lines = [
        {
            "sku": line.sku,
            "category": line.category,
            "quantity": line.quantity,
            "amount": str(line.amount),
        }
        for line in lines
    ]
    if connection.vendor == "postgresql" and event is not None and purchase_one_statement():
        outbox_add_after(
            _PURCHASE_INSERT_SQL,
            {
                "id": booking.purchase_id,
                "member": member.pk,
                "store": store.pk,
                "receipt_id": receipt_id,
                "channel": channel,
                "occurred_at": occurred_at,
                "currency": currency,
                "total": total,
                "qualifying_amount": booking.qualifying_amount,
                "lines": orjson.dumps(recorded_lines).decode(),
                "points_earned": booking.points,
                "base_points": booking.base_points,
                "body_hash": body_hash,
                "response": orjson.dumps(response).decode(),
                "now": timezone.now(),
            },
            event=event,
        )
        return
    Purchase.objects.create(
        id=booking.purchase_id,
        member=member,
        store=store,
        receipt_id=receipt_id,
        channel=channel,
        occurred_at=occurred_at,
        currency=currency,
        total=total,
        qualifying_amount=booking.qualifying_amount,
        lines=recorded_lines,
        points_earned=booking.points,
        base_points=booking.base_points,
        body_hash=body_hash,
        response=response,
    )
    if event is not None:
        outbox_add(
            topic=event.topic,
            dedupe_key=event.dedupe_key,
            member_id=event.member_id,
            payload=event.payload,
        )


def purchase_replay(*, store: Store, receipt_id: str, body_hash: str) -> dict[str, Any] | None:
    """The first answer to this receipt when the body is the same; None when
    it was never recorded; receipt_conflict when it was, with another body."""
    existing = (
        Purchase.objects.filter(store=store, receipt_id=receipt_id)
        .values("body_hash", "response")
        .first()
    )
    if existing is None:
        return None
    if existing["body_hash"] != body_hash:
        raise ReceiptConflict(
            f"Receipt {receipt_id} of store {store.code} was recorded with another body."
        )
    return existing["response"]


@dataclass
class ReturnBooking:
    body: dict[str, Any]
    replayed: bool
    purchase: Purchase | None = None
    kept_categories: set[str] | None = None


def return_book(
    *,
    member: Member,
    purchase_id: uuid.UUID,
    store: Store,
    receipt_id: str,
    occurred_at: datetime,
    currency: str,
    total: Decimal,
    lines: list[Line],
    body_hash: str,
    now: datetime,
    bonus_reversal: Callable[[Purchase, list[Line]], int] | None = None,
) -> ReturnBooking:
    """Reverse a purchase's points in proportion to what comes back,
    pending points first, and its qualifying points alike; record the
    return with its answer. In the caller's transaction, under the
    member's account lock. Idempotent on (store, return receipt id).

    `bonus_reversal(purchase, lines)`, when given, answers the campaign
    bonus points this return takes back (the caller's campaigns keep their
    own account of them); they go in the same `return` entry."""
    member.market.check_currency(currency)
    lines_total_check(total, lines)
    account = account_lock(member.pk)
    # Under the account lock, so a retry racing its first call waits
    # for it and then finds it.
    existing = (
        Return.objects.filter(store=store, receipt_id=receipt_id)
        .values("body_hash", "response")
        .first()
    )
    if existing is not None:
        if existing["body_hash"] != body_hash:
            raise ReceiptConflict(
                f"Return receipt {receipt_id} of store {store.code} was recorded with another body."
            )
        return ReturnBooking(body=existing["response"], replayed=True)
    occurred_at_check(occurred_at, now)
    purchase = Purchase.objects.select_for_update().get(pk=purchase_id)
    bought: dict[str, Decimal] = defaultdict(Decimal)
    category: dict[str, str] = {}
    for line in purchase.lines:
        bought[line["sku"]] += Decimal(line["amount"])
        category.setdefault(line["sku"], line.get("category", ""))
    returned: dict[str, Decimal] = defaultdict(Decimal)
    for earlier in Return.objects.filter(purchase_id=purchase_id).values_list("lines", flat=True):
        for line in earlier:
            returned[line["sku"]] += Decimal(line["amount"])
    for line in lines:
        returned[line.sku] += line.amount
        if line.sku not in bought or returned[line.sku] > bought[line.sku]:
            raise ReturnExceedsPurchase(
                f"Returns of {line.sku} would exceed what receipt {purchase.receipt_id} had."
            )
    if purchase.returned_amount + total > purchase.total:
        raise ReturnExceedsPurchase(f"Returns would exceed the purchase total {purchase.total}.")
    excluded = set(member.market.excluded_categories or ())
    this_qualifying = sum(
        (line.amount for line in lines if category[line.sku] not in excluded), Decimal(0)
    )
    purchase.returned_amount += total
    purchase.returned_qualifying_amount += this_qualifying
    if purchase.returned_amount >= purchase.total:
        # All of it is back (a sku on lines of several categories counts
        # by its first one above): so are all of its points.
        purchase.returned_qualifying_amount = purchase.qualifying_amount
    returned_share = (purchase.returned_qualifying_amount, purchase.qualifying_amount)
    reversed_total = _share(purchase.points_earned, *returned_share)
    reverse = reversed_total - purchase.points_reversed
    purchase.points_reversed = reversed_total
    # Qualifying points go back alike; a return never downgrades at once.
    base_reversed = _share(purchase.base_points, *returned_share)
    qualifying_add(
        member_id=member.pk,
        on=local_date(member.market, purchase.occurred_at),
        points=-(base_reversed - purchase.base_points_reversed),
    )
    purchase.base_points_reversed = base_reversed
    if bonus_reversal is not None:
        reverse += bonus_reversal(purchase, lines)
    return_id = uuid.uuid4()
    book = Book.open(account)
    book.settle(today_for(member.market, now))
    if reverse:
        book.reverse_purchase(
            points=reverse, purchase_id=purchase_id, reference=receipt_id, return_id=return_id
        )
    purchase.save(
        update_fields=[
            "returned_amount",
            "returned_qualifying_amount",
            "points_reversed",
            "base_points_reversed",
        ]
    )
    body = {
        "return_id": str(return_id),
        "receipt_id": receipt_id,
        "purchase_id": str(purchase_id),
        "points_reversed": reverse,
        "member": member_summary(
            member=member,
            balance=account.balance,
            pending=account.pending,
            expiring=book.expiring(),
        ),
    }
    book.save()
    Return.objects.create(
        id=return_id,
        purchase_id=purchase_id,
        store=store,
        receipt_id=receipt_id,
        occurred_at=occurred_at,
        total=total,
        points_reversed=reverse,
        body_hash=body_hash,
        lines=[
            {"sku": line.sku, "quantity": line.quantity, "amount": str(line.amount)}
            for line in lines
        ],
        response=body,
    )
    outbox_add(
        topic="points.returned",
        dedupe_key=f"points.returned:{return_id}",
        member_id=member.pk,
        payload={
            "member_number": member.member_number,
            "purchase_id": str(purchase_id),
            "return_id": str(return_id),
            "points": reverse,
        },
    )
    return ReturnBooking(
        body=body,
        replayed=False,
        purchase=purchase,
        kept_categories={
            category[sku]
            for sku in bought
            if returned[sku] < bought[sku] and category[sku] not in excluded
        },
    )


def _redeemed_event(redemption: Redemption, member: Member) -> None:
    """`points.redeemed`, once per redemption and status (held, captured,
    cancelled, expired)."""
    outbox_add(
        topic="points.redeemed",
        dedupe_key=f"points.redeemed:{redemption.pk}:{redemption.status}",
        member_id=member.pk,
        payload={
            "member_number": member.member_number,
            "redemption_id": str(redemption.pk),
            "points": redemption.points,
            "status": redemption.status,
        },
    )


def _redemption_view(redemption: Redemption, member: dict[str, Any]) -> dict[str, Any]:
    return {
        "redemption_id": str(redemption.pk),
        "status": redemption.status,
        "points": redemption.points,
        "value": {"amount": str(redemption.value), "currency": redemption.currency},
        "expires_at": redemption.expires_at.isoformat() if redemption.expires_at else None,
        "reference": redemption.reference,
        "store_code": redemption.store.code,
        "member": member,
    }


def points_redeem(
    *,
    actor: Actor,
    member_ref: dict[str, str],
    points: int,
    store_code: str,
    reference: str = "",
    capture: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Points as payment: spent at once, or held until captured or released."""
    now = now or timezone.now()
    member = visible_member(actor=actor, **member_ref)
    member.check_active()
    market = member.market
    store = store_in_market(market=market, store_code=store_code)
    with transaction.atomic():
        book = book_to_spend(member_id=member.pk, today=today_for(market, now), points=points)
        account = book.account
        redemption = Redemption.objects.create(
            id=uuid.uuid4(),
            member=member,
            store=store,
            points=points,
            value=(points * market.point_value).quantize(CENT),
            currency=market.currency,
            reference=reference,
            status=Redemption.Status.CAPTURED if capture else Redemption.Status.HELD,
            expires_at=None if capture else now + timedelta(minutes=market.hold_minutes),
        )
        entry = book.book_entry(
            LedgerEntry.Kind.REDEEM,
            -points,
            reference=reference or str(redemption.pk),
            redemption=redemption,
            api_client_id=actor.api_client_id,
        )
        book.take(entry, points)
        book.save()
        _redeemed_event(redemption, member)
        summary = member_summary(
            member=member,
            balance=account.balance,
            pending=account.pending,
            expiring=book.expiring(),
        )
    return _redemption_view(redemption, summary)


def _redemption_for_update(actor: Actor, redemption_id: str) -> tuple[Redemption, Book, Member]:
    try:
        key = uuid.UUID(str(redemption_id))
    except ValueError:
        raise NotFound("No such redemption.") from None
    found = Redemption.objects.filter(pk=key).values("member_id").first()
    if found is None:
        raise NotFound("No such redemption.")
    account = account_lock(found["member_id"])
    redemption = (
        Redemption.objects.select_for_update()
        .select_related("member__market", "member__tier", "store")
        .get(pk=key)
    )
    if not actor.sees_market(redemption.member.market_id):
        raise NotFound("No such redemption.")
    return redemption, Book.open(account), redemption.member


def redemption_release(*, book: Book, redemption: Redemption, status: str) -> None:
    """Give a held or captured redemption's points back to the lots they came from."""
    spent = LedgerEntry.objects.get(redemption=redemption, kind=LedgerEntry.Kind.REDEEM)
    entry = book.book_entry(
        LedgerEntry.Kind.REDEEM_CANCEL,
        redemption.points,
        reference=spent.reference,
        redemption=redemption,
    )
    book.restore(spent, entry)
    redemption.status = status
    redemption.save(update_fields=["status", "updated_at"])
    book.save()
    _redeemed_event(redemption, redemption.member)


def redemption_expire_due(*, actor: Actor, redemption_id: str, now: datetime | None = None) -> bool:
    """Release a hold whose time has run out, in a transaction of its own:
    a caller's enclosing transaction (an idempotent request) that then
    answers hold_expired must not roll the release back."""
    now = now or timezone.now()
    try:
        key = uuid.UUID(str(redemption_id))
    except ValueError:
        return False
    if not Redemption.objects.filter(
        pk=key, status=Redemption.Status.HELD, expires_at__lte=now
    ).exists():
        return False
    with transaction.atomic():
        redemption, book, _ = _redemption_for_update(actor, str(key))
        if (
            redemption.status != Redemption.Status.HELD
            or redemption.expires_at is None
            or redemption.expires_at > now
        ):
            return False
        redemption_release(book=book, redemption=redemption, status=Redemption.Status.EXPIRED)
    return True


def redemption_capture(
    *, actor: Actor, redemption_id: str, now: datetime | None = None
) -> dict[str, Any]:
    now = now or timezone.now()
    expired = False
    with transaction.atomic():
        redemption, book, member = _redemption_for_update(actor, redemption_id)
        member.check_active()
        if redemption.status == Redemption.Status.HELD:
            if redemption.expires_at is not None and redemption.expires_at <= now:
                # Release it now rather than wait for the job; then refuse.
                redemption_release(
                    book=book, redemption=redemption, status=Redemption.Status.EXPIRED
                )
                expired = True
            else:
                redemption.status = Redemption.Status.CAPTURED
                redemption.save(update_fields=["status", "updated_at"])
                _redeemed_event(redemption, member)
        elif redemption.status != Redemption.Status.CAPTURED:
            raise HoldExpired(f"The hold is {redemption.status}.")
        summary = member_summary(
            member=member,
            balance=book.account.balance,
            pending=book.account.pending,
            expiring=book.expiring(),
        )
    if expired:
        raise HoldExpired("The hold expired; its points are back on the balance.")
    return _redemption_view(redemption, summary)


def redemption_cancel(
    *, actor: Actor, redemption_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """Release a hold, or give a captured redemption's points back. Cancelling
    what is already cancelled or expired changes nothing."""
    with transaction.atomic():
        redemption, book, member = _redemption_for_update(actor, redemption_id)
        member.check_active()
        if redemption.status in (Redemption.Status.HELD, Redemption.Status.CAPTURED):
            redemption_release(book=book, redemption=redemption, status=Redemption.Status.CANCELLED)
        summary = member_summary(
            member=member,
            balance=book.account.balance,
            pending=book.account.pending,
            expiring=book.expiring(),
        )
    return _redemption_view(redemption, summary)


def entry_view(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "kind": entry.kind,
        "points": entry.points,
        "created_at": entry.created_at.isoformat(),
        "reference": entry.reference,
        "expires_on": entry.expires_on.isoformat() if entry.expires_on else None,
    }


def points_adjust(
    *,
    member: Member,
    points: int,
    reason: str,
    actor: Actor,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A correction by staff or a back office. A positive one is available
    at once and expires like earned points; a negative one takes from the
    first-expiring lots and may leave a debt."""
    if not points or abs(points) > MAX_POINTS:
        raise ValidationFailed(
            "points must be a non-zero integer.", errors={"points": ["Must be non-zero."]}
        )
    if not reason.strip():
        raise ValidationFailed("A reason is required.", errors={"reason": ["Required."]})
    member.check_active()
    now = now or timezone.now()
    market = member.market
    today = today_for(market, now)
    with transaction.atomic():
        account = account_lock(member.pk)
        book = Book.open(account)
        book.settle(today)
        entry = book.book_entry(
            LedgerEntry.Kind.ADJUST,
            points,
            reference=reason[:128],
            reason=reason,
            expires_on=expiry_for(market, today) if points > 0 else None,
            api_client_id=actor.api_client_id,
            staff_user_id=actor.staff_user_id,
        )
        if points > 0:
            book.add_lot(entry, available_on=today, expires_on=entry.expires_on, matured=True)
        else:
            book.take(entry, -points)
        book.save()
        summary = member_summary(
            member=member,
            balance=account.balance,
            pending=account.pending,
            expiring=book.expiring(),
        )
    return {"entry": entry_view(entry), "member": summary}


def points_close(*, member: Member, reason: str, now: datetime | None = None) -> list[LedgerEntry]:
    """Close a member's points for good (an erasure): held redemptions are
    released, then the balance (or a debt) and the pending points are taken
    to zero by `adjust` entries with `reason`, so the ledger still proves
    the account. Runs in the caller's transaction, under the account lock.
    Answers the entries booked (none when all was zero already)."""
    now = now or timezone.now()
    today = today_for(member.market, now)
    entries: list[LedgerEntry] = []
    with transaction.atomic():
        account = account_lock(member.pk, open_only=False)
        book = Book.open(account)
        held = Redemption.objects.select_for_update().filter(
            member_id=member.pk, status=Redemption.Status.HELD
        )
        for redemption in held.order_by("created_at", "id"):
            redemption_release(book=book, redemption=redemption, status=Redemption.Status.CANCELLED)
            # The release saved its book: go on from the lots as they are now.
            book = Book.open(account)
        book.settle(today)
        if account.pending:
            entry = book.book_entry(
                LedgerEntry.Kind.ADJUST, -account.pending, reference=reason, reason=reason
            )
            for lot in [lot for lot in book.lots if not lot.matured and lot.remaining > 0]:
                book.take_pending(entry, lot, lot.remaining)
            entries.append(entry)
        if account.balance > 0:
            entry = book.book_entry(
                LedgerEntry.Kind.ADJUST, -account.balance, reference=reason, reason=reason
            )
            book.take(entry, account.balance)
            entries.append(entry)
        elif account.balance < 0:
            # A debt is forgiven: no lot holds it, the entry only evens the sum.
            entry = book.book_entry(
                LedgerEntry.Kind.ADJUST, -account.balance, reference=reason, reason=reason
            )
            account.balance = 0
            entries.append(entry)
        book.save()
        account_close(account=account, now=now)
    return entries


def points_bonus(
    *,
    member: Member,
    points: int,
    reason: str,
    reference: str,
    now: datetime | None = None,
) -> LedgerEntry:
    """Points the club gives (a mission's reward, a gift): a `bonus` entry,
    available at once and expiring like earned points. Runs in the caller's
    transaction when there is one (a purchase that completes a mission),
    else in its own; either way under the member's account lock."""
    if points <= 0 or points > MAX_POINTS:
        raise ValidationFailed(
            "points must be a positive integer.", errors={"points": ["Must be positive."]}
        )
    now = now or timezone.now()
    market = member.market
    today = today_for(market, now)
    with transaction.atomic():
        account = account_lock(member.pk)
        book = Book.open(account)
        book.settle(today)
        entry = book.book_entry(
            LedgerEntry.Kind.BONUS,
            points,
            reference=reference[:128],
            reason=reason[:255],
            expires_on=expiry_for(market, today),
        )
        book.add_lot(entry, available_on=today, expires_on=entry.expires_on, matured=True)
        book.save()
    return entry
