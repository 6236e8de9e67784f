"""Writes of the insights app: NPS answers. (The scores are written by the
`insights_refresh` job, insights/scoring.py.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from club.dates import occurred_at_check
from club.selectors import store_in_market
from core.actors import Actor
from core.outbox import outbox_add
from insights.models import NpsResponse
from journeys.services import journey_on_event
from loyalty.ledger import account_lock
from loyalty.models import PointsAccount
from loyalty.selectors import member_summary
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
    return nps_response_view(response, summary)
