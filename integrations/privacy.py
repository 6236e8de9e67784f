"""Members' privacy rights (GDPR articles 15, 17, 20 and 21): the consent
history, a copy of everything (export), erasure, and the retention of
inactive members.

It reads and writes every domain (members, the ledger, rewards, journeys),
so it lives in the highest layer that may import them all: `integrations/`.

- `member_consents`: the consents as they stand and their history;
- `member_export_chunks`: the export as JSON text, piece by piece (querysets
  read with `.iterator()`), so a long history streams in flat memory;
- `member_erase`: the erasure, in one transaction; the books stay
  (purchases, returns, the ledger), the points are closed through the
  ledger (`loyalty.services.points_close`), so `check_ledger` still proves
  the account;
- `members_retention`: the daily job that erases members inactive for
  longer than their market's `inactive_retention_days`, and sends
  `member.inactive_notice` 30 days before.

Profiling (article 21): `insights_refresh` scores only the members
`members.selectors.profiled_members()` names (active, `profiling` true) and
drops the scores of the others; the export lists the scores held and the
NPS answers, and erasure deletes both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from club.models import Market
from core.actors import Actor, system_actor
from core.jobs import JobResult, Progress, job
from core.models import IdempotencyRecord
from core.outbox import outbox_add
from insights.models import MemberScore, NpsResponse
from insights.services import nps_responses_delete
from journeys.models import ActivityEvent, MemberMission
from loyalty.ledger import account_lock
from loyalty.models import LedgerEntry, Purchase, Redemption, Return, TierChange
from loyalty.selectors import member_detail
from loyalty.services import points_close
from members.models import Card, ConsentChange, Member
from members.services import CONSENT_FIELDS, consent_changes_record
from rewards.models import BenefitUse, Voucher

ERASED_REASON = "erased"
NOTICE_DAYS = 30
BATCH = 500


# --- consents ------------------------------------------------------------------


def member_consents(*, member: Member) -> dict[str, Any]:
    """The consents as they stand, and every change, newest first."""
    history = [
        {
            "consent": row["consent"],
            "granted": row["granted"],
            "at": row["at"].isoformat(),
            "source": row["source"],
        }
        for row in ConsentChange.objects.filter(member_id=member.pk)
        .order_by("-at", "-id")
        .values("consent", "granted", "at", "source")
        .iterator()
    ]
    return {
        "current": {field: getattr(member, field) for field in CONSENT_FIELDS},
        "history": history,
    }


# --- export --------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def _rows(qs: QuerySet[Any], fields: Iterable[str], chunk_size: int = 1000) -> Iterator[str]:
    """A JSON array, row by row, read with .iterator() (a server-side cursor
    on PostgreSQL): memory stays flat however long the history."""
    yield "["
    first = True
    for row in qs.values(*fields).iterator(chunk_size=chunk_size):
        yield ("" if first else ",") + _dumps(row)
        first = False
    yield "]"


def _sections(member: Member) -> list[tuple[str, Any]]:
    mid = member.pk
    return [
        (
            "cards",
            _rows(
                Card.objects.filter(member_id=mid).order_by("issued_at", "id"),
                ["number", "status", "issued_at", "blocked_at"],
            ),
        ),
        ("consents", member_consents(member=member)),
        (
            "tier_history",
            _rows(
                TierChange.objects.filter(member_id=mid).order_by("id"),
                [
                    "from_tier__code",
                    "to_tier__code",
                    "cause",
                    "reason",
                    "qualifying_points",
                    "valid_until",
                    "changed_at",
                ],
            ),
        ),
        (
            "ledger",
            _rows(
                LedgerEntry.objects.filter(member_id=mid).order_by("id"),
                ["id", "kind", "points", "reference", "reason", "expires_on", "created_at"],
            ),
        ),
        (
            "purchases",
            _rows(
                Purchase.objects.filter(member_id=mid).order_by("occurred_at", "id"),
                [
                    "id",
                    "store__code",
                    "receipt_id",
                    "channel",
                    "occurred_at",
                    "currency",
                    "total",
                    "lines",
                    "points_earned",
                    "returned_amount",
                    "points_reversed",
                ],
            ),
        ),
        (
            "returns",
            _rows(
                Return.objects.filter(purchase__member_id=mid).order_by("occurred_at", "id"),
                [
                    "id",
                    "purchase_id",
                    "store__code",
                    "receipt_id",
                    "occurred_at",
                    "total",
                    "lines",
                    "points_reversed",
                ],
            ),
        ),
        (
            "redemptions",
            _rows(
                Redemption.objects.filter(member_id=mid).order_by("created_at", "id"),
                [
                    "id",
                    "store__code",
                    "points",
                    "value",
                    "currency",
                    "reference",
                    "status",
                    "created_at",
                ],
            ),
        ),
        (
            "vouchers",
            _rows(
                Voucher.objects.filter(member_id=mid).order_by("issued_at", "id"),
                [
                    "code",
                    "reward__code",
                    "status",
                    "source",
                    "points_cost",
                    "value_amount",
                    "value_currency",
                    "value_text",
                    "issued_at",
                    "expires_at",
                    "redeemed_at",
                    "redeemed_store__code",
                    "redeemed_receipt_id",
                ],
            ),
        ),
        (
            "benefit_uses",
            _rows(
                BenefitUse.objects.filter(member_id=mid).order_by("used_at", "id"),
                ["benefit__code", "period_start", "used_at", "store__code", "channel"],
            ),
        ),
        (
            "missions",
            _rows(
                MemberMission.objects.filter(member_id=mid).order_by("id"),
                [
                    "mission__code",
                    "status",
                    "progress",
                    "current",
                    "target",
                    "starts_on",
                    "deadline",
                    "completed_at",
                    "rewarded_at",
                ],
            ),
        ),
        (
            "events",
            _rows(
                ActivityEvent.objects.filter(member_id=mid).order_by("occurred_at", "id"),
                ["type", "occurred_at", "properties", "event_id", "recorded_at"],
            ),
        ),
        (
            "surveys",
            _rows(
                NpsResponse.objects.filter(member_id=mid).order_by("occurred_at", "id"),
                [
                    "id",
                    "score",
                    "touchpoint",
                    "store__code",
                    "comment",
                    "occurred_at",
                    "created_at",
                ],
            ),
        ),
        # What the last insights_refresh holds about them (null: nothing,
        # e.g. without the profiling consent).
        ("insights", _insights_held(mid)),
    ]


def _insights_held(member_id: int) -> dict[str, Any] | None:
    return (
        MemberScore.objects.filter(member_id=member_id)
        .values(
            "as_of",
            "recency_days",
            "frequency_12m",
            "monetary_12m",
            "r",
            "f",
            "m",
            "segment",
            "action",
            "x",
            "t_x",
            "t_cal",
            "mean_repeat_value",
            "p_alive",
            "expected_purchases_90d",
            "expected_purchases_52w",
            "expected_spend",
            "clv_12m",
        )
        .first()
    )


def member_export_chunks(*, member: Member, now: datetime | None = None) -> Iterator[str]:
    """Everything the club holds on the member, as one JSON object, in
    pieces. The member object first, each collection streamed."""
    now = now or timezone.now()
    yield '{"member":' + _dumps(member_detail(member=member))
    for name, value in _sections(member):
        yield f',"{name}":'
        if isinstance(value, Iterator):
            yield from value
        else:
            yield _dumps(value)
    yield ',"exported_at":' + _dumps(now.isoformat()) + "}"


# --- erasure -------------------------------------------------------------------


def member_erase(*, member: Member, actor: Actor, now: datetime | None = None) -> dict[str, Any]:
    """Erase a member, in one transaction: the personal data go (names,
    email, phone, birth date, event properties, and in the answers kept for
    replays), the cards are blocked, held
    redemptions released and the points (balance, debt, pending) closed by
    `adjust` entries (reason `erased`); purchases, returns and the ledger
    stay, linked to the member number only; consents still granted are
    withdrawn (with their history rows); a `member.erased` event is
    written to the outbox. Erasing an erased member changes nothing and
    answers the same state."""
    now = now or timezone.now()
    with transaction.atomic():
        account_lock(
            member.pk, open_only=False
        )  # the lock order: the points account first, then the member
        locked = Member.objects.select_for_update().get(pk=member.pk)
        if locked.status != Member.Status.ERASED:
            locked.market = member.market
            points_close(member=locked, reason=ERASED_REASON, now=now)
            Card.objects.filter(member_id=locked.pk, status=Card.Status.ACTIVE).update(
                status=Card.Status.BLOCKED, blocked_at=now
            )
            for event in ActivityEvent.objects.filter(member_id=locked.pk).only(
                "pk", "properties", "response"
            ):
                if event.properties or (event.response or {}).get("properties"):
                    event.properties = {}
                    event.response = _scrubbed(event.response)
                    event.save(update_fields=["properties", "response"])
            # What the club learnt about them goes: their NPS answers (with
            # their comments, out of the report's rollups too) and their scores.
            nps_responses_delete(member=locked)
            MemberScore.objects.filter(member_id=locked.pk).delete()
            _stored_answers_scrub(locked.member_number)
            # Consents end with the member: each one still granted is
            # withdrawn, and the history says by whom.
            granted = {field: False for field in CONSENT_FIELDS if getattr(locked, field)}
            if granted:
                consent_changes_record(member=locked, consents=granted, source=actor.name, at=now)
            Member.objects.filter(pk=locked.pk).update(
                **granted,
                consents_updated_at=now if granted else locked.consents_updated_at,
                status=Member.Status.ERASED,
                email=None,
                phone=None,
                first_name="",
                last_name="",
                birth_date=None,
                external_id=None,
                erased_at=now,
                updated_at=now,
            )
            outbox_add(
                topic="member.erased",
                dedupe_key=f"member.erased:{locked.pk}",
                member_id=locked.pk,
                payload={"member_number": locked.member_number, "erased_at": now.isoformat()},
            )
            erased_at = now
        else:
            erased_at = locked.erased_at or locked.updated_at
    return {
        "member_number": locked.member_number,
        "status": Member.Status.ERASED,
        "erased_at": erased_at.isoformat(),
    }


_PERSONAL = {
    "first_name": None,
    "last_name": None,
    "email": None,
    "phone": None,
    "birth_date": None,
}


def _scrubbed(body: Any) -> Any:
    """A stored answer about the member without its personal data: the
    member object's names, email, phone and birth date, an event's
    properties."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    if "email" in body or "first_name" in body:
        body.update(_PERSONAL)
        body["status"] = Member.Status.ERASED
        if "cards" in body:
            body["cards"] = []
    if "properties" in body:
        body["properties"] = {}
    if "comment" in body:  # an NPS answer
        body["comment"] = ""
    return body


def _stored_answers_scrub(member_number: str | None) -> None:
    """The answers kept for Idempotency-Key replays (an enrolment, an
    event) carry personal data: they are rewritten without it, so a replay
    answers the member as erased."""
    if not member_number:
        return
    records = IdempotencyRecord.objects.filter(
        Q(response_body__member_number=member_number)
        | Q(response_body__member__member_number=member_number, response_body__has_key="comment")
    ).only("pk", "response_body")
    for record in records.iterator():
        scrubbed = _scrubbed(record.response_body)
        if scrubbed != record.response_body:
            IdempotencyRecord.objects.filter(pk=record.pk).update(response_body=scrubbed)


# --- retention -----------------------------------------------------------------

# The last sign of life of each member of a market: enrolment, a purchase,
# an activity event, a ledger entry (any points movement). One statement per
# batch of members (keyset on the id) answers those quiet since a cutoff.
_LAST_SEEN_SQL = """
SELECT id, member_number, last_seen FROM (
  SELECT m.id, m.member_number, {greatest}(
      m.enrolled_at,
      COALESCE((SELECT MAX(p.occurred_at) FROM loyalty_purchase p
                WHERE p.member_id = m.id), m.enrolled_at),
      COALESCE((SELECT MAX(e.occurred_at) FROM journeys_activityevent e
                WHERE e.member_id = m.id), m.enrolled_at),
      COALESCE((SELECT MAX(l.created_at) FROM loyalty_ledgerentry l
                WHERE l.member_id = m.id), m.enrolled_at)) AS last_seen
  FROM members_member m
  WHERE m.market_id = %(market)s AND m.status <> 'erased' AND m.id > %(after)s
) s
WHERE last_seen < %(cutoff)s
ORDER BY id LIMIT %(limit)s
"""


def inactive_members(
    *, market: Market, cutoff: datetime, after: int = 0, limit: int = BATCH
) -> list[tuple[int, str, datetime]]:
    """The members of `market` with no sign of life since `cutoff`, by id,
    with their last one."""
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    with connection.cursor() as cursor:
        cursor.execute(
            _LAST_SEEN_SQL.format(greatest=greatest),
            {"market": market.pk, "cutoff": cutoff, "after": after, "limit": limit},
        )
        rows = cursor.fetchall()
    return [
        (int(i), n, seen if isinstance(seen, datetime) else _parse(seen)) for i, n, seen in rows
    ]


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else timezone.make_aware(parsed, timezone.utc)


@job(title="members: retention", schedule=crontab(minute="40", hour="2"), unit="members")
def members_retention(
    *,
    as_of: datetime,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Members inactive (no purchase, activity event or points movement)
    for longer than their market's `inactive_retention_days` are erased;
    30 days before, a `member.inactive_notice` event is written once per
    member and period of inactivity."""
    result = JobResult(job="members_retention")
    actor = system_actor("retention")
    for market in Market.objects.filter(inactive_retention_days__isnull=False).order_by("id"):
        days = market.inactive_retention_days or 0
        erase_cutoff = as_of - timedelta(days=days)
        notice_cutoff = as_of - timedelta(days=max(days - NOTICE_DAYS, 0))
        after = 0
        while max_batches is None or result.batches < max_batches:
            rows = inactive_members(
                market=market, cutoff=notice_cutoff, after=after, limit=batch_size
            )
            if not rows:
                break
            after = rows[-1][0]
            result.batches += 1
            for member_id, number, last_seen in rows:
                if last_seen < erase_cutoff:
                    member = Member.objects.select_related("market", "tier").get(pk=member_id)
                    member_erase(member=member, actor=actor, now=as_of)
                else:
                    # Once per member and period: a member who comes back and
                    # goes quiet again is told again.
                    outbox_add(
                        topic="member.inactive_notice",
                        dedupe_key=f"member.inactive_notice:{member_id}:{last_seen.isoformat()}",
                        member_id=member_id,
                        payload={
                            "member_number": number,
                            "erase_on": (last_seen + timedelta(days=days)).date().isoformat(),
                        },
                    )
                result.rows += 1
            if progress:
                progress(len(rows))
    return result
