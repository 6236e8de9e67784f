"""vouchers_expire: the job, its command, its task and its schedule; and
voucher_reactivate: once, for a redeemed voucher whose purchase was fully returned."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.actors import staff_actor
from core.errors import ValidationFailed
from core.jobs import schedules
from rewards.models import Voucher
from rewards.services import (
    REACTIVATION_MIN_DAYS,
    voucher_issue,
    voucher_reactivate,
    voucher_redeem,
    vouchers_expire,
)
from tests.helpers import make_reward, purchase_body, redeem, return_body

pytestmark = pytest.mark.django_db

AS_OF = timezone.now().replace(microsecond=0) - timedelta(days=1)


def expiring_at(member, reward, when) -> Voucher:
    """A voucher (valid 30 days) that expires exactly at `when`."""
    return voucher_issue(
        member=member, reward=reward, source="gift", now=when - timedelta(days=reward.validity_days)
    )


def statuses(*vouchers: Voucher) -> list[str]:
    return [Voucher.objects.get(pk=v.pk).status for v in vouchers]


def test_vouchers_expire_at_their_moment_not_before(make_member):
    member, reward = make_member(), make_reward(validity_days=30)
    due = expiring_at(member, reward, AS_OF)
    early = expiring_at(member, reward, AS_OF - timedelta(days=3))
    not_yet = expiring_at(member, reward, AS_OF + timedelta(microseconds=1))
    result = vouchers_expire(as_of=AS_OF)
    assert (result.rows, result.batches) == (2, 1)
    assert statuses(due, early, not_yet) == ["expired", "expired", "issued"]
    again = vouchers_expire(as_of=AS_OF)
    assert (again.rows, again.batches) == (0, 0)
    assert statuses(due, early, not_yet) == ["expired", "expired", "issued"]
    assert vouchers_expire(as_of=AS_OF + timedelta(microseconds=1)).rows == 1
    assert statuses(not_yet) == ["expired"]


def test_only_issued_vouchers_expire(api, make_member, system_client):
    member, reward = make_member(), make_reward(validity_days=30)
    now = timezone.now()
    used = voucher_issue(member=member, reward=reward, source="gift", now=now - timedelta(days=10))
    voucher_redeem(
        actor=system_client,
        code=used.code,
        store_code="SE-001",
        receipt_id="R-1",
        now=now - timedelta(days=9),
    )
    cancelled = expiring_at(member, reward, now - timedelta(days=1))
    Voucher.objects.filter(pk=cancelled.pk).update(status="cancelled")
    assert vouchers_expire(as_of=now + timedelta(days=100)).rows == 0
    assert statuses(used, cancelled) == ["redeemed", "cancelled"]


def test_the_job_goes_in_batches_and_resumes(make_member):
    member, reward = make_member(), make_reward(validity_days=30)
    vouchers = [expiring_at(member, reward, AS_OF - timedelta(hours=i)) for i in range(5)]
    stopped = vouchers_expire(as_of=AS_OF, batch_size=2, max_batches=1)
    assert (stopped.rows, stopped.batches) == (2, 1)
    # The first-expiring go first.
    assert statuses(*vouchers) == ["issued", "issued", "issued", "expired", "expired"]
    rest = vouchers_expire(as_of=AS_OF, batch_size=2)
    assert (rest.rows, rest.batches) == (3, 2)
    assert set(statuses(*vouchers)) == {"expired"}


def test_the_command_takes_as_of(make_member):
    member, reward = make_member(), make_reward(validity_days=30)
    voucher = expiring_at(member, reward, AS_OF)
    out = StringIO()
    call_command(
        "vouchers_expire", "--as-of", (AS_OF - timedelta(seconds=1)).isoformat(), stdout=out
    )
    assert out.getvalue().startswith("vouchers_expire: 0 rows in 0 batches")
    assert statuses(voucher) == ["issued"]
    out = StringIO()
    call_command("vouchers_expire", "--as-of", AS_OF.isoformat(), stdout=out)
    assert out.getvalue().startswith("vouchers_expire: 1 rows in 1 batches")
    assert statuses(voucher) == ["expired"]


def test_the_task_runs_the_job_and_is_scheduled(make_member):
    vouchers_expire_task = vouchers_expire.task

    member, reward = make_member(), make_reward(validity_days=30)
    voucher = expiring_at(member, reward, AS_OF)
    assert vouchers_expire_task(as_of=AS_OF.isoformat()) == "vouchers_expire: 1 rows in 1 batches"
    assert statuses(voucher) == ["expired"]
    assert vouchers_expire_task.name == "rewards.vouchers_expire"
    assert vouchers_expire_task.acks_late
    assert ("rewards.vouchers_expire", {"minute": "15"}) in schedules().values()


# --- reactivation -----------------------------------------------------------


@pytest.fixture
def bought_with_voucher(api, make_member):
    """A member's purchase R-100 (499.00) in SE-001, paid partly with a voucher."""
    member = make_member()
    voucher = voucher_issue(member=member, reward=make_reward(validity_days=90), source="gift")
    assert (
        api.post(
            "/api/v1/purchases", purchase_body(member.member_number, "R-100"), format="json"
        ).status_code
        == 201
    )
    assert redeem(api, voucher.code, store="SE-001", receipt="R-100").status_code == 200
    voucher.refresh_from_db()
    return member, voucher


def give_back(api, amount: str, receipt: str) -> None:
    response = api.post("/api/v1/returns", return_body("R-100", receipt, amount), format="json")
    assert response.status_code == 201, response.content


def test_a_voucher_comes_back_once_its_purchase_is_fully_returned(
    api, bought_with_voucher, admin_user
):
    member, voucher = bought_with_voucher
    with pytest.raises(ValidationFailed, match="not fully returned"):
        voucher_reactivate(voucher=voucher, actor=staff_actor(admin_user))
    give_back(api, "200.00", "RET-1")
    with pytest.raises(ValidationFailed, match="not fully returned"):
        voucher_reactivate(voucher=voucher, actor=staff_actor(admin_user))
    assert statuses(voucher) == ["redeemed"]
    give_back(api, "299.00", "RET-2")
    back = voucher_reactivate(voucher=voucher, actor=staff_actor(admin_user))
    assert back.status == "issued" and back.reactivated
    assert back.reactivated_by_id == admin_user.pk
    assert back.redeemed_at is None and back.redeemed_store_id is None
    assert "R-100" in back.reactivation_note
    assert back.expires_at == voucher.expires_at  # 90 days left: kept
    # Usable again, and then it is used for good.
    assert redeem(api, voucher.code, store="SE-002", receipt="R-200").status_code == 200
    voucher.refresh_from_db()
    with pytest.raises(ValidationFailed, match="already reactivated once"):
        voucher_reactivate(voucher=voucher, actor=staff_actor(admin_user))
    assert statuses(voucher) == ["redeemed"]


def test_a_reactivated_voucher_is_valid_at_least_a_while(api, bought_with_voucher, admin_user):
    _, voucher = bought_with_voucher
    give_back(api, "499.00", "RET-1")
    soon = timezone.now() + timedelta(days=2)
    Voucher.objects.filter(pk=voucher.pk).update(expires_at=soon)
    back = voucher_reactivate(voucher=voucher, actor=staff_actor(admin_user))
    assert back.expires_at - timezone.now() > timedelta(days=REACTIVATION_MIN_DAYS - 1)


def test_only_a_redeemed_voucher_is_reactivated(make_member, admin_user):
    voucher = voucher_issue(member=make_member(), reward=make_reward(), source="gift")
    with pytest.raises(ValidationFailed, match="issued"):
        voucher_reactivate(voucher=voucher, actor=staff_actor(admin_user))
    Voucher.objects.filter(pk=voucher.pk).update(status="expired")
    with pytest.raises(ValidationFailed, match="expired"):
        voucher_reactivate(voucher=voucher, actor=staff_actor(admin_user))
    assert not Voucher.objects.get(pk=voucher.pk).reactivated


def test_a_voucher_used_on_an_unrecorded_receipt_is_not_reactivated(api, make_member, admin_user):
    voucher = voucher_issue(member=make_member(), reward=make_reward(), source="gift")
    assert redeem(api, voucher.code, receipt="NOT-RECORDED").status_code == 200
    voucher.refresh_from_db()
    with pytest.raises(ValidationFailed, match="No purchase"):
        voucher_reactivate(voucher=voucher, actor=staff_actor(admin_user))
    assert statuses(voucher) == ["redeemed"]
