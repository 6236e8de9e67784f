"""Real threads against real Postgres: a mission completes once and pays
once however many purchases or events arrive at the same moment."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from journeys.models import ActivityEvent, MemberMission
from rewards.models import Voucher
from tests.helpers import (
    assert_ledger_consistent,
    bonus_entries,
    in_parallel,
    mission_row,
    purchase_body,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_ten_parallel_purchases_complete_and_pay_each_mission_once(journey_on, api, make_member):
    member = make_member()

    def work(i: int, client: APIClient) -> int:
        body = purchase_body(
            member.member_number, f"R-par-{i}", "10.00", store="SE-001" if i % 2 else "SE-WEB"
        )
        body["channel"] = "store" if i % 2 else "online"
        return client.post("/api/v1/purchases", body, format="json").status_code

    assert in_parallel(10, work, api.raw_key) == [201] * 10
    first = mission_row(member, "first-purchase")
    assert first.status == "completed" and first.rewarded_at is not None
    assert len(bonus_entries(member, "mission:first-purchase")) == 1
    both = mission_row(member, "store-and-online")
    assert both.status == "completed" and both.voucher is not None
    assert Voucher.objects.filter(member=member, source="mission").count() == 1
    # Ten purchases of one day: one visit, so no second purchase yet; all counted.
    second = mission_row(member, "second-purchase")
    assert second.status == "in_progress" and len(second.progress["purchases"]) == 10
    assert MemberMission.objects.filter(member=member).count() == 3
    assert_ledger_consistent()


def test_ten_parallel_copies_of_an_event_count_once(journey_on, api, make_member):
    member = make_member()
    body = {
        "member": {"member_number": member.member_number},
        "type": "profile_completed",
        "occurred_at": (timezone.now() - timedelta(minutes=1)).isoformat(),
        "event_id": "crm-77",
    }

    def work(i: int, client: APIClient) -> tuple[int, bool]:
        response = client.post("/api/v1/events", body, format="json")
        return response.status_code, response.get("Idempotent-Replayed") == "true"

    results = Counter(in_parallel(10, work, api.raw_key))
    assert results == {(201, False): 1, (201, True): 9}, results
    assert ActivityEvent.objects.filter(member=member).count() == 1
    assert len(bonus_entries(member, "mission:complete-profile")) == 1
    assert_ledger_consistent()
