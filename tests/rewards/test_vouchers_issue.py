"""rewards.services.voucher_issue: vouchers given without points (missions,
gifts), once per dedupe key, inside the caller's transaction."""

from __future__ import annotations

import pytest
from django.db import transaction

from core.errors import RewardNotAvailable, ValidationFailed
from core.models import OutboxEvent
from loyalty.models import LedgerEntry
from rewards.models import Reward, Voucher
from rewards.services import voucher_issue
from tests.helpers import assert_ledger_consistent, balance, make_reward

pytestmark = pytest.mark.django_db


def test_a_gift_costs_no_points(make_member, now):
    member = make_member(points=100)
    entries = LedgerEntry.objects.count()
    voucher = voucher_issue(
        member=member, reward=Reward.objects.get(code="coffee-voucher"), source="gift", now=now
    )
    voucher.refresh_from_db()
    assert (voucher.status, voucher.source, voucher.points_cost) == ("issued", "gift", 0)
    assert voucher.ledger_entry is None
    assert voucher.issued_at == now
    assert (voucher.expires_at - now).days == 30
    assert voucher.value_text == "A free coffee"
    assert balance(member) == 100
    assert LedgerEntry.objects.count() == entries
    assert OutboxEvent.objects.filter(topic="voucher.issued", member_id=member.pk).count() == 1
    assert_ledger_consistent()


def test_a_dedupe_key_issues_once(make_member):
    member = make_member()
    reward = make_reward("welcome-gift", stock=10)
    first = voucher_issue(
        member=member, reward=reward, source="mission", dedupe_key="mission:welcome:1"
    )
    again = voucher_issue(
        member=member, reward=reward, source="mission", dedupe_key="mission:welcome:1"
    )
    assert again.pk == first.pk
    assert Voucher.objects.filter(member=member).count() == 1
    assert Reward.objects.get(pk=reward.pk).stock == 9
    other = voucher_issue(
        member=member, reward=reward, source="mission", dedupe_key="mission:welcome:2"
    )
    assert other.pk != first.pk and other.code != first.code
    without_key = [voucher_issue(member=member, reward=reward, source="gift") for _ in range(2)]
    assert len({v.pk for v in without_key}) == 2
    assert Reward.objects.get(pk=reward.pk).stock == 6


def test_a_dedupe_key_of_another_member_is_refused(make_member):
    reward = make_reward()
    voucher_issue(member=make_member(), reward=reward, source="gift", dedupe_key="gift:1")
    other = make_member()
    with pytest.raises(ValidationFailed):
        voucher_issue(member=other, reward=reward, source="gift", dedupe_key="gift:1")
    assert not Voucher.objects.filter(member=other).exists()


def test_it_runs_in_the_callers_transaction(make_member):
    member = make_member()
    reward = make_reward(stock=3)
    with pytest.raises(RuntimeError), transaction.atomic():
        voucher_issue(member=member, reward=reward, source="mission", dedupe_key="m:1")
        assert Voucher.objects.filter(member=member).count() == 1
        raise RuntimeError("the mission's transaction fails later")
    assert not Voucher.objects.filter(member=member).exists()
    assert Reward.objects.get(pk=reward.pk).stock == 3
    assert not OutboxEvent.objects.filter(topic="voucher.issued").exists()


def test_out_of_stock_is_refused_and_the_callers_transaction_goes_on(make_member):
    member = make_member()
    reward = make_reward(stock=1)
    with transaction.atomic():
        voucher_issue(member=member, reward=reward, source="gift")
        with pytest.raises(RewardNotAvailable):
            voucher_issue(member=member, reward=reward, source="gift", dedupe_key="late")
        # The refusal left the transaction usable, and nothing of itself behind.
        assert Voucher.objects.filter(member=member).count() == 1
    assert Reward.objects.get(pk=reward.pk).stock == 0
    assert not Voucher.objects.filter(dedupe_key="late").exists()


def test_an_unknown_source_is_refused(make_member):
    with pytest.raises(ValidationFailed):
        voucher_issue(member=make_member(), reward=make_reward(), source="lottery")
    assert not Voucher.objects.exists()


def test_a_gift_is_worth_the_members_market_value(make_member):
    norwegian = make_member(market="NO")
    voucher = voucher_issue(
        member=norwegian, reward=Reward.objects.get(code="voucher-50"), source="gift"
    )
    assert (str(voucher.value_amount), voucher.value_currency) == ("50.00", "NOK")
