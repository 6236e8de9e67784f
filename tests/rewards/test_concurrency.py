"""Real threads against real Postgres: no number of parallel uses passes the allowance."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from core.models import OutboxEvent
from rewards.models import BenefitUsage, BenefitUse
from tests.helpers import in_parallel, set_tier, use

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def outcome(response: Any) -> tuple[int, str | None]:
    return response.status_code, response.json().get(
        "code"
    ) if response.status_code >= 400 else None


def test_20_parallel_coffees_give_exactly_one(api, make_member):
    member = make_member(market="SE")
    results = in_parallel(
        20, lambda i, client: outcome(use(client, member, "coffee", key=f"coffee-{i}")), api.raw_key
    )
    counts = Counter(results)
    assert counts == {(201, None): 1, (422, "benefit_not_available"): 19}, counts
    assert BenefitUse.objects.filter(member=member).count() == 1
    assert BenefitUsage.objects.get(member=member).count == 1
    assert OutboxEvent.objects.filter(topic="benefit.used", member_id=member.pk).count() == 1


def test_20_parallel_member_evenings_give_exactly_two(api, make_member):
    member = set_tier(make_member(market="SE"), "gold")
    results = in_parallel(
        20,
        lambda i, client: outcome(use(client, member, "member-evening", key=f"eve-{i}")),
        api.raw_key,
    )
    counts = Counter(results)
    assert counts == {(201, None): 2, (422, "benefit_not_available"): 18}, counts
    assert BenefitUse.objects.filter(member=member).count() == 2
    assert BenefitUsage.objects.get(member=member).count == 2


def test_parallel_unlimited_uses_all_count(api, make_member):
    member = set_tier(make_member(market="SE"), "silver")
    results = in_parallel(
        10,
        lambda i, client: outcome(
            use(client, member, "free-shipping", store="SE-WEB", key=f"ship-{i}")
        ),
        api.raw_key,
    )
    assert Counter(results) == {(201, None): 10}
    assert BenefitUsage.objects.get(member=member).count == 10  # no lost update
    assert OutboxEvent.objects.filter(topic="benefit.used", member_id=member.pk).count() == 10


def test_parallel_retries_of_one_key_use_the_coffee_once(api, make_member):
    member = make_member(market="SE")
    results = in_parallel(
        10, lambda i, client: outcome(use(client, member, "coffee", key="same-key")), api.raw_key
    )
    counts = Counter(results)
    # Each answer is the use itself, its replay, or "still running": never a second use.
    assert set(counts) <= {(201, None), (409, "request_in_progress")}, counts
    assert counts[(201, None)] >= 1
    assert BenefitUse.objects.filter(member=member).count() == 1
