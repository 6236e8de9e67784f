"""Real threads against real Postgres: a voucher is redeemed once, and a
dedupe key issues once, whatever runs in parallel."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from rest_framework.test import APIClient

from core.models import OutboxEvent
from rewards.models import Reward, Voucher
from rewards.services import voucher_issue
from tests.helpers import in_parallel, make_reward, redeem
from tests.rewards.test_rewards_concurrency import outcome

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_20_parallel_redemptions_of_one_voucher_succeed_once(api, make_member):
    voucher = voucher_issue(
        member=make_member(), reward=Reward.objects.get(code="voucher-50"), source="gift"
    )

    def work(i: int, client: APIClient) -> tuple[int, str | None]:
        return outcome(redeem(client, voucher.code, store="SE-001", receipt=f"R-{i}"))

    counts = Counter(in_parallel(20, work, api.raw_key))
    assert counts == {(200, None): 1, (409, "voucher_used"): 19}, counts
    voucher.refresh_from_db()
    assert voucher.status == "redeemed"
    assert voucher.redeemed_receipt_id.startswith("R-")
    assert OutboxEvent.objects.filter(topic="voucher.redeemed").count() == 1


def test_parallel_redemptions_and_the_expiry_job_do_not_cross(api, make_member):
    """The job expiring as of the future and a redemption now: whichever locks
    the row first wins, and the voucher ends either redeemed or expired."""
    from datetime import timedelta

    from django.utils import timezone

    from rewards.services import vouchers_expire

    member = make_member()
    vouchers = [
        voucher_issue(
            member=member, reward=Reward.objects.get(code="coffee-voucher"), source="gift"
        )
        for _ in range(10)
    ]
    barrier = threading.Barrier(11)

    def redeem_one(i: int) -> int:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api.raw_key}")
            barrier.wait(timeout=30)
            return redeem(client, vouchers[i].code, receipt=f"R-{i}").status_code
        finally:
            connection.close()

    def expire() -> int:
        try:
            barrier.wait(timeout=30)
            return vouchers_expire(as_of=timezone.now() + timedelta(days=365), batch_size=3).rows
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=11) as pool:
        job = pool.submit(expire)
        codes = list(pool.map(redeem_one, range(10)))
        expired = job.result()
    redeemed = codes.count(200)
    assert set(codes) <= {200, 422}  # 422: voucher_not_valid, the job was first
    assert redeemed + expired == 10
    statuses = Counter(Voucher.objects.filter(member=member).values_list("status", flat=True))
    assert statuses == Counter({"redeemed": redeemed, "expired": expired})
    assert all(v.redeemed_at is not None for v in Voucher.objects.filter(status="redeemed"))


def test_parallel_issues_under_one_dedupe_key_give_one_voucher(make_member):
    member = make_member()
    reward = make_reward("mission-gift", stock=100)
    barrier = threading.Barrier(10)

    def issue(i: int) -> int:
        try:
            barrier.wait(timeout=30)
            return voucher_issue(
                member=member, reward=reward, source="mission", dedupe_key="mission:welcome:profile"
            ).pk
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(issue, range(10)))
    assert len(set(ids)) == 1
    assert Voucher.objects.filter(member=member).count() == 1
    assert Reward.objects.get(pk=reward.pk).stock == 99  # the losers' stock went back
    assert OutboxEvent.objects.filter(topic="voucher.issued").count() == 1
