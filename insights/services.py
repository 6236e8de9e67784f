"""Writes of the insights app: NPS answers and the report's rollups of them.
(The scores are written by the `insights_refresh` job, insights/scoring.py.)

The NPS report counts each member once, with their latest answer in the
period. An answer is that one iff its day is in the period and the member's
next answer (`next_occurred_at`) is on a day after it, or there is none. So
the report's counts are the answers by day (`NpsDay`) less the answers by
day and next answer's day (`NpsSuperseded`) within the period. Every write
of answers keeps both, and each answer's `next_occurred_at`, in its own
transaction under the member's account lock (one writer per member at a
time); the rollup rows are changed last, in one statement in one order
(no deadlock between two writers, and held for the shortest time).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from club.dates import occurred_at_check
from club.models import Market
from club.selectors import store_in_market
from core.actors import Actor
from core.outbox import outbox_add
from insights.models import NpsResponse
from journeys.services import journey_on_event
from loyalty.ledger import account_lock
from loyalty.models import PointsAccount
from loyalty.selectors import member_summary
from members.models import Member
from members.selectors import visible_member

SURVEY_EVENT = "survey_answered"


def nps_response_view(response: NpsResponse, member: dict[str, Any]) -> dict[str, Any]:
    return {
        "response_id": response.pk,
        "score": response.score,
        "category": NpsResponse.category_of(response.score),
        "touchpoint": response.touchpoint,
        "store_code": response.store.code if response.store_id else None,
        "comment": response.comment,
        "occurred_at": response.occurred_at.isoformat(),
        "member": member,
    }


def nps_response_record(
    *,
    actor: Actor,
    member_ref: dict[str, str],
    score: int,
    touchpoint: str,
    occurred_at: datetime,
    store_code: str | None = None,
    comment: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Store a member's NPS answer, write its `nps.answered` event and count
    it for the welcome journey's survey mission (goal `survey_answered`), in
    one transaction. Answers the
    contract's body (with the member object: the mission may pay points)."""
    now = now or timezone.now()
    member = visible_member(
        actor=actor, card=member_ref.get("card"), member_number=member_ref.get("member_number")
    )
    member.check_active()
    occurred_at_check(occurred_at, now)
    store = store_in_market(market=member.market, store_code=store_code) if store_code else None
    with transaction.atomic():
        # The account first (the lock order of loyalty/ledger.py): missions
        # are counted under it, and an erasure cannot slip in between.
        account_lock(member.pk)
        response = NpsResponse.objects.create(
            member_id=member.pk,
            market_id=member.market_id,
            touchpoint=touchpoint,
            store=store,
            score=score,
            comment=comment,
            occurred_at=occurred_at,
            client_id=actor.api_client_id,
        )
        outbox_add(
            topic="nps.answered",
            dedupe_key=f"nps.answered:{response.pk}",
            member_id=member.pk,
            payload={
                "member_number": member.member_number,
                "score": score,
                "touchpoint": touchpoint,
            },
        )
        # The journey keeps the ids of the events it counted; an answer's id
        # is negated so it never equals an activity event's.
        journey_on_event(
            member=member,
            event_id=-response.pk,
            event_type=SURVEY_EVENT,
            occurred_at=occurred_at,
            now=now,
        )
        account = PointsAccount.objects.get(member_id=member.pk)
        summary = member_summary(member=member, balance=account.balance, pending=account.pending)
        # Last: the market's rollup rows stay locked until the commit.
        _nps_answer_link(response, ZoneInfo(member.market.time_zone))
    return nps_response_view(response, summary)


# A rollup cell: (table, group_by, span, day, next_day or None, group_key,
# category), in the order of the tables' unique keys.
Cell = tuple[str, str, str, date, date | None, str, str]
_DAY, _SUPERSEDED = "npsday", "npssuperseded"
# The fields of an answer the rollups are keyed by.
NPS_ROLLUP_FIELDS = ("market_id", "touchpoint", "store_id", "score", "occurred_at")


def _month(day: date) -> date:
    return day.replace(day=1)


def nps_cells(answer: Any, next_occurred_at: datetime | None, zone: ZoneInfo) -> list[Cell]:
    """The rollup cells one answer counts in (once each) when the member's
    next answer is at `next_occurred_at` (None: it is their latest)."""
    day = timezone.localtime(answer.occurred_at, zone).date()
    category = NpsResponse.category_of(answer.score)
    groups = (
        ("", ""),
        ("touchpoint", answer.touchpoint),
        ("store", str(answer.store_id) if answer.store_id else ""),
    )
    cells: list[Cell] = []
    for group_by, key in groups:
        cells.append((_DAY, group_by, "day", day, None, key, category))
        cells.append((_DAY, group_by, "month", _month(day), None, key, category))
        if next_occurred_at is not None:
            after = timezone.localtime(next_occurred_at, zone).date()
            for span, first, then in (
                ("dd", day, after),
                ("dm", day, _month(after)),
                ("md", _month(day), after),
                ("mm", _month(day), _month(after)),
            ):
                cells.append((_SUPERSEDED, group_by, span, first, then, key, category))
    return cells


_UPSERT = {
    _DAY: (
        "INSERT INTO insights_npsday (market_id, group_by, span, day, group_key, category, "
        "answers) VALUES {values} ON CONFLICT (market_id, group_by, span, day, group_key, "
        "category) DO UPDATE SET answers = insights_npsday.answers + excluded.answers",
        "(%s, %s, %s, %s, %s, %s, %s)",
    ),
    _SUPERSEDED: (
        "INSERT INTO insights_npssuperseded (market_id, group_by, span, day, next_day, "
        "group_key, category, answers) VALUES {values} ON CONFLICT (market_id, group_by, span, "
        "day, next_day, group_key, category) DO UPDATE "
        "SET answers = insights_npssuperseded.answers + excluded.answers",
        "(%s, %s, %s, %s, %s, %s, %s, %s)",
    ),
}


def nps_rollups_add(*, market_id: int, changes: Counter[Cell]) -> None:
    """Add `changes` (cell: answers, negative to take away) to the market's
    rollup rows: a statement per table, the rows in the tables' key order,
    so two writers lock shared rows in the same order."""
    for table in (_DAY, _SUPERSEDED):
        rows = sorted((cell, n) for cell, n in changes.items() if cell[0] == table and n != 0)
        if not rows:
            continue
        sql, row_sql = _UPSERT[table]
        params: list[Any] = []
        for (_, group_by, span, day, next_day, key, category), n in rows:
            params += [market_id, group_by, span, day]
            if table == _SUPERSEDED:
                params.append(next_day)
            params += [key, category, n]
        with connection.cursor() as cursor:
            cursor.execute(sql.format(values=", ".join([row_sql] * len(rows))), params)


def _nps_answer_link(response: NpsResponse, zone: ZoneInfo) -> None:
    """Slot a new answer in among its member's (ordered by occurred_at, then
    id; it may lie in the past): it takes its successor's time as its next,
    its predecessor takes its time, and the rollups follow. The caller holds
    the member's account lock: the member's answers stand still."""
    mine = NpsResponse.objects.filter(member_id=response.member_id).exclude(pk=response.pk)
    at = response.occurred_at
    successor = (
        mine.filter(Q(occurred_at__gt=at) | Q(occurred_at=at, id__gt=response.pk))
        .order_by("occurred_at", "id")
        .values_list("occurred_at", flat=True)
        .first()
    )
    predecessor = (
        mine.filter(Q(occurred_at__lt=at) | Q(occurred_at=at, id__lt=response.pk))
        .order_by("-occurred_at", "-id")
        .only("id", "next_occurred_at", *NPS_ROLLUP_FIELDS)
        .first()
    )
    changes: Counter[Cell] = Counter(nps_cells(response, successor, zone))
    if successor is not None:
        NpsResponse.objects.filter(pk=response.pk).update(next_occurred_at=successor)
        response.next_occurred_at = successor
    if predecessor is not None:
        changes.update(nps_cells(predecessor, at, zone))
        changes.subtract(nps_cells(predecessor, predecessor.next_occurred_at, zone))
        NpsResponse.objects.filter(pk=predecessor.pk).update(next_occurred_at=at)
    nps_rollups_add(market_id=response.market_id, changes=changes)


def nps_responses_delete(*, member: Member) -> int:
    """Delete every NPS answer of the member (erasure) and take them out of
    the report's rollups, in one transaction under the member's account
    lock. Answers how many were deleted."""
    with transaction.atomic():
        account_lock(member.pk, open_only=False)
        answers = list(
            NpsResponse.objects.filter(member_id=member.pk).only(
                "id", "next_occurred_at", *NPS_ROLLUP_FIELDS
            )
        )
        if not answers:
            return 0
        zones = {
            market.pk: ZoneInfo(market.time_zone)
            for market in Market.objects.filter(pk__in={a.market_id for a in answers})
        }
        changes: dict[int, Counter[Cell]] = {market_id: Counter() for market_id in zones}
        for answer in answers:
            changes[answer.market_id].subtract(
                nps_cells(answer, answer.next_occurred_at, zones[answer.market_id])
            )
        NpsResponse.objects.filter(id__in=[a.pk for a in answers]).delete()
        for market_id in sorted(changes):
            nps_rollups_add(market_id=market_id, changes=changes[market_id])
    return len(answers)
