"""The back office's fixtures: a market with something on every panel."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from backoffice.selectors import members_overview
from club.dates import today_for
from club.models import Market
from insights.models import FittedModel, MemberScore, NpsResponse
from insights.services import nps_response_record
from members.models import Member
from tests.helpers import SYSTEM, buy, enrol_at


def answer(member: Member, score: int, ago: timedelta = timedelta(minutes=5)) -> datetime:
    occurred_at = timezone.now() - ago
    nps_response_record(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        score=score,
        touchpoint=NpsResponse.Touchpoint.STORE,
        occurred_at=occurred_at,
    )
    return occurred_at


def score(member: Member, segment: str, action: str) -> None:
    """A member's stored scores, as `insights_refresh` leaves them."""
    MemberScore.objects.create(
        member=member,
        market=member.market,
        as_of=today_for(member.market),
        recency_days=3,
        frequency_12m=4,
        monetary_12m="1200.00",
        r=5,
        f=4,
        m=4,
        segment=segment,
        action=action,
        p_alive=0.9312,
        expected_purchases_90d=1.84,
        expected_spend="412.50",
        clv_12m="2410.00",
    )


@pytest.fixture
def club(make_member: Any) -> dict[str, Any]:
    """Sweden with a buyer (new, scored, a promoter), a member enrolled 40
    days ago who never bought (a detractor) and an erased member; the
    models fitted."""
    se = Market.objects.get(code="SE")
    before = members_overview(market=se, now=timezone.now())
    buyer = make_member(market="SE", profiling=True, first_name="Bea")
    buy(buyer, "1200.00")
    idle = enrol_at(make_member(market="SE"), timezone.now() - timedelta(days=40))
    erased = make_member(market="SE")
    Member.objects.filter(pk=erased.pk).update(status=Member.Status.ERASED)
    answered = [answer(buyer, 10), answer(idle, 3)]
    score(buyer, "champions", "keep")
    FittedModel.objects.create(
        market=se,
        as_of=today_for(se),
        members=1,
        purchase_model={
            "r": 0.2426,
            "alpha": 4.4136,
            "a": 0.7929,
            "b": 2.4259,
            "log_likelihood": -9582.43,
        },
        spend_model=None,
    )
    return {"before": before, "buyer": buyer, "idle": idle, "answered": answered, "se": se}
