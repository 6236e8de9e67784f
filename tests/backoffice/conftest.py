"""The back office's fixtures: a market with something on every panel."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from backoffice.selectors import members_overview
from club.models import Market
from insights.models import NpsResponse
from insights.scoring import insights_refresh
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


BUYERS = 12


@pytest.fixture
def club(make_member: Any) -> dict[str, Any]:
    """Sweden with twelve new members who bought one to four times over the
    last 80 days (the last of them, `buyer`, four times and most), a member
    enrolled 40 days ago who never bought, an erased member, NPS answers of
    the buyer (10) and the idle member (3), and `insights_refresh` run."""
    se = Market.objects.get(code="SE")
    now = timezone.now()
    before = members_overview(market=se, now=now)
    buyers = []
    for i in range(BUYERS):
        member = make_member(market="SE", profiling=True)
        for k in range(1 + i % 4):
            buy(member, f"{100 + 50 * i}.00", occurred_at=now - timedelta(days=80 - 20 * k - i))
        buyers.append(member)
    buyer = buyers[-1]
    idle = enrol_at(make_member(market="SE"), now - timedelta(days=40))
    erased = make_member(market="SE")
    Member.objects.filter(pk=erased.pk).update(status=Member.Status.ERASED)
    answered = [answer(buyer, 10), answer(idle, 3)]
    insights_refresh(as_of=timezone.now(), market="SE")
    return {"before": before, "buyer": buyer, "idle": idle, "answered": answered, "se": se}
