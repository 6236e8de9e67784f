"""Helpers the reward and voucher tests share (tests/rewards/test_rewards_*.py,
test_vouchers_*.py)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from loyalty.models import PointsAccount
from loyalty.selectors import ledger_discrepancies
from rewards.models import Reward


def claim_url(member: Any) -> str:
    return f"/api/v1/members/{member.member_number}/rewards"


def claim(api: Any, member: Any, reward: str, key: str | None = None, **body: Any) -> Any:
    """POST .../rewards with a fresh Idempotency-Key unless given."""
    return api.post(claim_url(member), {"reward": reward, **body}, format="json",
                    HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex)


def redeem(api: Any, code: str, store: str = "SE-001", receipt: str = "R-1", **headers: Any) -> Any:
    return api.post(f"/api/v1/vouchers/{code}/redeem",
                    {"store_code": store, "receipt_id": receipt}, format="json", **headers)


def balance(member: Any) -> int:
    return PointsAccount.objects.get(member_id=member.pk).balance


def assert_ledger_consistent() -> None:
    found = ledger_discrepancies()
    assert found == [], [str(d) for d in found]


def make_reward(code: str = "test-reward", *, points_cost: int = 100, stock: int | None = None,
                value_text: str = "A test gift", validity_days: int = 30, **fields: Any) -> Reward:
    defaults: dict[str, Any] = {"name": code.replace("-", " ").title(), "points_cost": points_cost,
                                "stock": stock, "value_text": value_text,
                                "validity_days": validity_days}
    defaults.update(fields)
    return Reward.objects.create(code=code, **defaults)


SEK_50 = {"amount": "50.00", "currency": "SEK"}
ZERO = Decimal("0")
