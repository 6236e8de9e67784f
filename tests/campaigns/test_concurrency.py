"""Budgets and per-member limits under real threads on real Postgres."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.experiments import experiment_create
from campaigns.models import Assignment, CampaignUsage, PurchaseBonus
from loyalty.models import LedgerEntry
from tests.campaigns.helpers import make_campaign, spent
from tests.helpers import SYSTEM, in_parallel, purchase_body

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_fifty_purchases_under_a_budget_of_1000_book_exactly_1000(api, make_member):
    campaign = make_campaign("BUDGET", reward=100, budget_points=1000)
    members = [make_member() for _ in range(50)]

    def work(i: int, client: APIClient) -> int:
        response = client.post(
            "/api/v1/purchases",
            purchase_body(members[i].member_number, f"R-budget-{i}", "10.00"),
            format="json",
        )
        assert response.status_code == 201, response.content
        return sum(b["points"] for b in response.json()["bonuses"])

    bonuses = in_parallel(50, work, api.raw_key)
    assert Counter(bonuses) == {100: 10, 0: 40}
    assert spent(campaign) == 1000
    assert (
        sum(PurchaseBonus.objects.filter(campaign=campaign).values_list("points", flat=True))
        == 1000
    )
    booked = LedgerEntry.objects.filter(kind="bonus").values_list("points", flat=True)
    assert sum(booked) == 1000 and len(booked) == 10
    call_command("check_ledger")


def test_a_budget_that_does_not_divide_gives_the_last_purchase_what_is_left(api, make_member):
    campaign = make_campaign("ODD", reward=300, budget_points=1000)
    members = [make_member() for _ in range(8)]

    def work(i: int, client: APIClient) -> int:
        response = client.post(
            "/api/v1/purchases",
            purchase_body(members[i].member_number, f"R-odd-{i}", "10.00"),
            format="json",
        )
        return sum(b["points"] for b in response.json()["bonuses"])

    assert Counter(in_parallel(8, work, api.raw_key)) == {300: 3, 100: 1, 0: 4}
    assert spent(campaign) == 1000


def test_a_limit_of_one_under_twenty_parallel_purchases_of_one_member_rewards_one(api, make_member):
    campaign = make_campaign("ONCE", reward=50, per_member_limit=1)
    member = make_member()

    def work(i: int, client: APIClient) -> int:
        response = client.post(
            "/api/v1/purchases",
            purchase_body(member.member_number, f"R-once-{i}", "10.00"),
            format="json",
        )
        assert response.status_code == 201, response.content
        return sum(b["points"] for b in response.json()["bonuses"])

    assert Counter(in_parallel(20, work, api.raw_key)) == {50: 1, 0: 19}
    assert CampaignUsage.objects.get(campaign=campaign, member=member).purchases == 1
    assert PurchaseBonus.objects.filter(campaign=campaign).count() == 1
    call_command("check_ledger")


def test_parallel_returns_give_the_budget_back_exactly(api, make_member):
    campaign = make_campaign("BACK", reward="2", budget_points=10_000)
    members = [make_member() for _ in range(10)]
    for i, member in enumerate(members):
        response = api.post(
            "/api/v1/purchases",
            purchase_body(member.member_number, f"R-back-{i}", "100.00"),
            format="json",
        )
        assert response.json()["bonuses"] == [{"campaign": "BACK", "points": 100}]
    assert spent(campaign) == 1000

    def work(i: int, client: APIClient) -> int:
        response = client.post(
            "/api/v1/returns",
            {
                "store_code": "SE-001",
                "receipt_id": f"RET-back-{i}",
                "original": {"store_code": "SE-001", "receipt_id": f"R-back-{i}"},
                "occurred_at": purchase_body("x", "x")["occurred_at"],
                "currency": "SEK",
                "total": "25.00",
                "lines": [{"sku": "SKU-1", "quantity": 1, "amount": "25.00"}],
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        return response.json()["points_reversed"]

    assert in_parallel(10, work, api.raw_key) == [50] * 10
    assert spent(campaign) == 750
    call_command("check_ledger")


def test_parallel_exposures_of_one_member_assign_once(api, make_member):
    now = timezone.now()
    experiment_create(
        actor=SYSTEM,
        code="EXP-PAR",
        name="Parallel",
        market_code="SE",
        hypothesis="",
        metric="revenue",
        window_days=30,
        variants=[{"code": "a", "weight": 1}, {"code": "b", "weight": 1}],
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
    )
    member = make_member()

    def work(i: int, client: APIClient) -> tuple[int, str]:
        response = client.post(
            "/api/v1/experiments/EXP-PAR/exposures",
            {"member": {"member_number": member.member_number}},
            format="json",
        )
        return response.status_code, response.content.decode()

    answers = in_parallel(20, work, api.raw_key)
    assert {status for status, _ in answers} == {200}
    assert len({body for _, body in answers}) == 1  # one variant, one assigned_at
    assert Assignment.objects.filter(member=member).count() == 1
