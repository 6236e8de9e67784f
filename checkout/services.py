"""What a till or a web shop does in one call, composed across the domains
in one transaction: enrol a member, record a purchase (points, tier,
campaign bonuses, missions) and a return.

The order inside the transaction is the lock order of loyalty/ledger.py:
the member's account first (taken by the ledger's booking), then what the
call is about.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.services import (
    Granted,
    bonuses_grant,
    bonuses_reverse,
    campaigns_candidates,
    needs_segment,
)
from club.dates import occurred_at_check
from club.selectors import store_in_market
from core.actors import Actor
from core.errors import NotFound, ReceiptConflict
from core.outbox import Event, outbox_add
from insights.selectors import member_segment
from journeys.services import journey_on_purchase, journey_on_return
from loyalty.models import Purchase
from loyalty.selectors import member_summary
from loyalty.services import (
    Line,
    account_open,
    lines_total_check,
    purchase_book,
    purchase_replay,
    purchase_save,
    receipt_hash,
    return_book,
)
from members.models import Member
from members.selectors import visible_member
from members.services import member_create


def member_enrol(
    *,
    actor: Actor,
    market_code: str,
    email: str | None = None,
    phone: str | None = None,
    first_name: str = "",
    last_name: str = "",
    birth_date: date | None = None,
    language: str = "",
    channel: str = Member.Channel.STORE,
    store_code: str | None = None,
    consents: dict[str, bool] | None = None,
) -> Member:
    """A new member with a card and an empty points account."""
    with transaction.atomic():
        member = member_create(
            actor=actor,
            market_code=market_code,
            email=email,
            phone=phone,
            first_name=first_name,
            last_name=last_name,
            birth_date=birth_date,
            language=language,
            channel=channel,
            store_code=store_code,
            consents=consents,
        )
        account_open(member=member)
        outbox_add(
            topic="member.enrolled",
            dedupe_key=f"member.enrolled:{member.pk}",
            member_id=member.pk,
            payload={
                "member_number": member.member_number,
                "market": member.market.code,
                "channel": member.channel,
            },
        )
    return member


def purchase_record(
    *,
    actor: Actor,
    member_ref: dict[str, str],
    store_code: str,
    receipt_id: str,
    channel: str,
    occurred_at: datetime,
    currency: str,
    total: Decimal,
    lines: list[Line],
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Book a receipt's points exactly once. Answers (body, replayed): the
    same receipt with the same body replays the first answer."""
    now = now or timezone.now()
    member = visible_member(actor=actor, **member_ref)
    store = store_in_market(market=member.market, store_code=store_code)
    body_hash = receipt_hash(
        {
            "member": member.pk,
            "receipt_id": receipt_id,
            "channel": channel,
            "occurred_at": occurred_at.isoformat(),
            "currency": currency,
            "total": str(total),
            "lines": [[line.sku, line.category, line.quantity, str(line.amount)] for line in lines],
        }
    )
    member.check_active()
    member.market.check_currency(currency)
    lines_total_check(total, lines)
    occurred_at_check(occurred_at, now)
    candidates = campaigns_candidates(market_id=member.market_id, occurred_at=occurred_at)
    tier_code = member.tier.code  # the tier the member bought in (the purchase may upgrade it)
    try:
        with transaction.atomic():
            bonuses: list[Granted] = []

            def bonus(purchase_id: uuid.UUID) -> int:
                # Under the member's account lock, before the points are booked.
                bonuses.extend(
                    bonuses_grant(
                        member_id=member.pk,
                        market=member.market,
                        purchase_id=purchase_id,
                        candidates=candidates,
                        lines=lines,
                        channel=channel,
                        store_code=store.code,
                        tier_code=tier_code,
                        segment=(
                            member_segment(member_id=member.pk)
                            if needs_segment(candidates)
                            else None
                        ),
                        occurred_at=occurred_at,
                    )
                )
                return sum(granted.points for granted in bonuses)

            booking = purchase_book(
                member=member,
                receipt_id=receipt_id,
                occurred_at=occurred_at,
                lines=lines,
                now=now,
                bonus=bonus if candidates else None,
            )
            points = booking.points + booking.bonus_points
            bonus_view = [{"campaign": b.campaign, "points": b.points} for b in bonuses]
            completed = journey_on_purchase(
                member=member,
                purchase=booking.purchase_id,
                channel=channel,
                occurred_at=occurred_at,
                categories=booking.qualifying_categories,
                now=now,
                book=booking.book,
            )
            account = booking.book.account
            body = {
                "purchase_id": str(booking.purchase_id),
                "receipt_id": receipt_id,
                "points_earned": points,
                "bonuses": bonus_view,
                "points_status": "available" if booking.matured else "pending",
                "available_on": booking.available_on.isoformat(),
                "tier_changed": booking.tier_changed,
                "member": member_summary(
                    member=member,
                    balance=account.balance,
                    pending=account.pending,
                    # A mission's reward just added a lot: read the expiry afresh.
                    expiring=None if completed else booking.expiring,
                ),
            }
            purchase_save(
                booking=booking,
                member=member,
                store=store,
                receipt_id=receipt_id,
                channel=channel,
                occurred_at=occurred_at,
                currency=currency,
                total=total,
                lines=lines,
                body_hash=body_hash,
                response=body,
                event=Event(
                    topic="points.earned",
                    dedupe_key=f"points.earned:{booking.purchase_id}",
                    member_id=member.pk,
                    payload={
                        "member_number": member.member_number,
                        "purchase_id": str(booking.purchase_id),
                        "receipt_id": receipt_id,
                        "store_code": store.code,
                        "points": points,  # campaign bonuses included
                        "status": body["points_status"],
                        "available_on": body["available_on"],
                    },
                ),
            )
        return body, False
    except IntegrityError as conflict:
        # Another request booked this receipt first (a retry racing itself).
        replay = purchase_replay(store=store, receipt_id=receipt_id, body_hash=body_hash)
        if replay is None:  # pragma: no cover - the conflict was on another constraint
            raise conflict
        return replay, True


def return_record(
    *,
    actor: Actor,
    store_code: str,
    receipt_id: str,
    original_store_code: str,
    original_receipt_id: str,
    occurred_at: datetime,
    currency: str,
    total: Decimal,
    lines: list[Line],
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Reverse a purchase's points in proportion; missions in progress no
    longer count what came back. Idempotent on (store, return receipt id)."""
    now = now or timezone.now()
    purchase = (
        Purchase.objects.select_related("member__market", "member__tier")
        .filter(store__code=original_store_code, receipt_id=original_receipt_id)
        .first()
    )
    if purchase is None or not actor.sees_market(purchase.member.market_id):
        raise NotFound("No such purchase.")
    member = purchase.member
    member.check_active()
    store = store_in_market(market=member.market, store_code=store_code)
    body_hash = receipt_hash(
        {
            "original": str(purchase.pk),
            "receipt_id": receipt_id,
            "occurred_at": occurred_at.isoformat(),
            "currency": currency,
            "total": str(total),
            "lines": [[line.sku, line.quantity, str(line.amount)] for line in lines],
        }
    )
    try:
        with transaction.atomic():
            booking = return_book(
                member=member,
                purchase_id=purchase.pk,
                store=store,
                receipt_id=receipt_id,
                occurred_at=occurred_at,
                currency=currency,
                total=total,
                lines=lines,
                body_hash=body_hash,
                now=now,
                bonus_reversal=bonuses_reverse,
            )
            if not booking.replayed:
                journey_on_return(
                    member=member,
                    purchase=purchase.pk,
                    occurred_at=purchase.occurred_at,
                    now=now,
                    kept_categories=booking.kept_categories or set(),
                )
    except IntegrityError:
        # The same return receipt booked at this moment for another purchase.
        raise ReceiptConflict(
            f"Return receipt {receipt_id} of store {store_code} was recorded with another body."
        ) from None
    return booking.body, booking.replayed
