"""Campaigns for the tests, made through the service as the API does."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from campaigns.models import Campaign, PurchaseBonus
from campaigns.services import campaign_create
from tests.helpers import SYSTEM


def make_campaign(code: str = "DOUBLE", *, reward: Any = "2", **fields: Any) -> Campaign:
    """A campaign in SE running from a day ago for a week: reward "2" is a
    multiplier of 2, an int that many points."""
    now = timezone.now()
    if isinstance(reward, int):
        kind = {"kind": "points", "points": reward}
    else:
        kind = {"kind": "multiplier", "factor": Decimal(reward)}
    args: dict[str, Any] = {
        "name": code.title(),
        "market_code": "SE",
        "starts_at": now - timedelta(days=1),
        "ends_at": now + timedelta(days=7),
        **kind,
        **fields,
    }
    return campaign_create(actor=SYSTEM, code=code, **args)


def campaign_body(code: str = "DOUBLE-TOOLS", **fields: Any) -> dict[str, Any]:
    now = timezone.now()
    body: dict[str, Any] = {
        "code": code,
        "name": "Double points on tools",
        "market": "SE",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=7)).isoformat(),
        "reward": {"kind": "multiplier", "factor": "2"},
    }
    body.update(fields)
    return body


def bonuses_of(campaign: Campaign) -> list[tuple[int, int]]:
    """(points, points reversed) of each bonus the campaign booked."""
    return list(
        PurchaseBonus.objects.filter(campaign=campaign)
        .order_by("id")
        .values_list("points", "points_reversed")
    )


def spent(campaign: Campaign) -> int:
    return Campaign.objects.values_list("spent_points", flat=True).get(pk=campaign.pk)
