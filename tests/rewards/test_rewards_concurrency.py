"""Real threads against real Postgres: parallel claims never take a reward
below its stock, and never overspend a balance."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from loyalty.models import LedgerEntry
from rewards.models import Reward, Voucher
from tests.contract import contract
from tests.helpers import assert_ledger_consistent, balance, claim, in_parallel, make_reward

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def outcome(response: Any) -> tuple[int, str | None]:
    """(status, problem code); the threads' plain clients do not check the
    contract, so the answer is checked here."""
    contract().check_response(response)
    return response.status_code, response.json().get(
        "code"
    ) if response.status_code >= 400 else None


def test_20_parallel_claims_of_a_stock_of_5_issue_exactly_5(api, make_member):
    reward = make_reward("limited", points_cost=100, stock=5)
    members = [make_member(points=100) for _ in range(20)]
    results = in_parallel(
        20,
        lambda i, client: outcome(claim(client, members[i], "limited", key=f"lim-{i}")),
        api.raw_key,
    )
    counts = Counter(results)
    assert counts == {(201, None): 5, (422, "reward_not_available"): 15}, counts
    reward.refresh_from_db()
    assert reward.stock == 0
    assert Voucher.objects.filter(reward=reward).count() == 5
    # Those who got one paid for it; the others kept their points.
    paid = set(Voucher.objects.filter(reward=reward).values_list("member_id", flat=True))
    assert sorted(balance(m) for m in members) == [0] * 5 + [100] * 15
    assert {m.pk for m in members if balance(m) == 0} == paid
    assert LedgerEntry.objects.filter(reference="reward:limited").count() == 5
    assert_ledger_consistent()


def test_20_parallel_claims_by_one_member_never_overspend(api, make_member):
    member = make_member(points=1000)
    make_reward("small", points_cost=150, stock=5)
    results = in_parallel(
        20, lambda i, client: outcome(claim(client, member, "small", key=f"one-{i}")), api.raw_key
    )
    counts = Counter(results)
    # 1000 points buy six at 150, the stock has five: five, and 250 left.
    assert counts[(201, None)] == 5, counts
    assert (
        counts[(201, None)]
        + counts[(422, "reward_not_available")]
        + counts[(422, "insufficient_points")]
        == 20
    ), counts
    assert balance(member) == 250
    assert Reward.objects.get(code="small").stock == 0
    assert Voucher.objects.filter(member=member).count() == 5
    assert_ledger_consistent()


def test_parallel_claims_by_one_member_stop_at_the_balance(api, make_member):
    member = make_member(points=500)
    results = in_parallel(
        10,
        lambda i, client: outcome(claim(client, member, "coffee-voucher", key=f"bal-{i}")),
        api.raw_key,
    )
    assert Counter(results) == {(201, None): 3, (422, "insufficient_points"): 7}
    assert balance(member) == 50
    assert_ledger_consistent()


def test_parallel_retries_of_one_claim_issue_one_voucher(api, make_member):
    member = make_member(points=1000)
    responses = in_parallel(
        10, lambda i, client: claim(client, member, "voucher-50", key="same-key"), api.raw_key
    )
    counts = Counter(outcome(response) for response in responses)
    assert counts[(201, None)] >= 1, counts
    assert set(counts) <= {(201, None), (409, "request_in_progress")}, counts
    assert Voucher.objects.filter(member=member).count() == 1
    # Every 201 is the one claim: its voucher at the top level, the same each time.
    answers = [r.json() for r in responses if r.status_code == 201]
    voucher = Voucher.objects.get(member=member)
    assert {a["code"].replace("-", "") for a in answers} == {voucher.code}, answers
    assert all(a == answers[0] for a in answers), answers
    assert answers[0]["member"]["points"]["balance"] == 500
    assert balance(member) == 500
    assert_ledger_consistent()
