"""The privacy rights over what insights holds: the export lists a member's
NPS answers and scores; erasure deletes them (and the comment kept for an
Idempotency-Key replay)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import IdempotencyRecord
from insights.models import MemberScore, NpsResponse
from insights.scoring import insights_refresh
from tests.helpers import buy
from tests.integrations.test_privacy import erase, export

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_the_export_lists_and_erasure_deletes_what_insights_holds(api, make_member):
    member = make_member(consents={"profiling": True})
    buy(member, "250.00")
    answer = {
        "member": {"member_number": member.member_number},
        "score": 3,
        "touchpoint": "support",
        "comment": "My neighbour's dog is called Rex",
        "occurred_at": (timezone.now() - timedelta(hours=1)).isoformat(),
    }
    posted = api.post("/api/v1/surveys/nps", answer, format="json", HTTP_IDEMPOTENCY_KEY="nps-1")
    assert posted.status_code == 201
    insights_refresh(market="SE")

    body = export(api, member)
    assert [(s["score"], s["touchpoint"], s["comment"]) for s in body["surveys"]] == [
        (3, "support", "My neighbour's dog is called Rex")
    ]
    assert body["insights"]["frequency_12m"] == 1
    assert body["insights"]["monetary_12m"] == "250.00"
    assert body["insights"]["segment"] is not None

    assert erase(api, member).status_code == 200
    assert not NpsResponse.objects.filter(member=member).exists()
    assert not MemberScore.objects.filter(member=member).exists()
    kept = IdempotencyRecord.objects.get(key="nps-1").response_body
    assert kept["comment"] == "" and kept["score"] == 3
    after = export(api, member)
    assert after["surveys"] == [] and after["insights"] is None
