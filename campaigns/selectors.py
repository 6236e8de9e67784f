"""Reads of campaigns and experiments, shaped as the API answers them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns.models import Assignment, Campaign, Experiment, PurchaseBonus, Variant
from core.actors import Actor

CAMPAIGN_STATUSES = ("scheduled", "active", "paused", "ended", "exhausted")
EXPERIMENT_STATUSES = ("scheduled", "running", "ended")


def _bonuses(aggregate: Any) -> Subquery:
    rows = PurchaseBonus.objects.filter(campaign=OuterRef("pk")).order_by()
    return Subquery(
        rows.values("campaign").annotate(n=aggregate).values("n"), output_field=IntegerField()
    )


def campaigns_annotated() -> QuerySet[Campaign]:
    """Campaigns with `spent` (the budget's counter, or for a campaign
    without one the sum of its bonuses net of returns)."""
    return Campaign.objects.select_related("market").annotate(
        spent=Case(
            When(
                budget_points__isnull=True,
                then=Coalesce(_bonuses(Sum(F("points") - F("points_reversed"))), Value(0)),
            ),
            default=F("spent_points"),
            output_field=IntegerField(),
        )
    )


def campaigns_with_reach() -> QuerySet[Campaign]:
    """For the admin: also purchases rewarded and members reached."""
    return campaigns_annotated().annotate(
        rewarded=Coalesce(_bonuses(Count("*")), Value(0)),
        reached=Coalesce(_bonuses(Count("member", distinct=True)), Value(0)),
    )


def campaign_status(campaign: Campaign, spent: int, now: datetime | None = None) -> str:
    now = now or timezone.now()
    if campaign.paused:
        return "paused"
    if now >= campaign.ends_at:
        return "ended"
    if now < campaign.starts_at:
        return "scheduled"
    if campaign.budget_points is not None and spent >= campaign.budget_points:
        return "exhausted"
    return "active"


def _status_filter(status: str, now: datetime) -> Q:
    running = Q(paused=False, starts_at__lte=now, ends_at__gt=now)
    exhausted = Q(budget_points__isnull=False, spent_points__gte=F("budget_points"))
    return {
        "paused": Q(paused=True),
        "ended": Q(paused=False, ends_at__lte=now),
        "scheduled": Q(paused=False, starts_at__gt=now),
        "exhausted": running & exhausted,
        "active": running & ~exhausted,
    }[status]


def campaign_view(campaign: Campaign, now: datetime | None = None) -> dict[str, Any]:
    """The campaign as the API answers it."""
    spent = getattr(campaign, "spent", None)
    if spent is None:
        spent = campaigns_annotated().values_list("spent", flat=True).get(pk=campaign.pk)
    reward: dict[str, Any] = (
        {"kind": "multiplier", "factor": str(campaign.factor.normalize())}
        if campaign.kind == Campaign.Kind.MULTIPLIER and campaign.factor is not None
        else {"kind": "points", "points": campaign.points}
    )
    return {
        "code": campaign.code,
        "name": campaign.name,
        "market": campaign.market.code,
        "starts_at": campaign.starts_at,
        "ends_at": campaign.ends_at,
        "channel": campaign.channel,
        "tiers": campaign.tiers,
        "segments": campaign.segments,
        "stores": campaign.stores,
        "categories": campaign.categories,
        "skus": campaign.skus,
        "min_amount": campaign.min_amount,
        "reward": reward,
        "budget_points": campaign.budget_points,
        "per_member_limit": campaign.per_member_limit,
        "stackable": campaign.stackable,
        "paused": campaign.paused,
        "status": campaign_status(campaign, spent, now),
        "spent_points": spent,
        "created_at": campaign.created_at,
    }


def campaigns_list(
    *, actor: Actor, market_code: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """The campaigns of the markets the actor sees, newest window first."""
    now = timezone.now()
    rows = campaigns_annotated()
    if actor.market_ids is not None:
        rows = rows.filter(market_id__in=actor.market_ids)
    if market_code:
        rows = rows.filter(market__code=market_code)
    if status:
        rows = rows.filter(_status_filter(status, now))
    return [campaign_view(c, now) for c in rows.order_by("-starts_at", "-id")[:500]]


def experiment_status(experiment: Experiment, now: datetime | None = None) -> str:
    now = now or timezone.now()
    if now < experiment.starts_at:
        return "scheduled"
    if now < experiment.ends_at:
        return "running"
    return "ended"


def experiment_view(experiment: Experiment, now: datetime | None = None) -> dict[str, Any]:
    """The experiment as the API answers it."""
    variants = list(
        Variant.objects.filter(experiment=experiment)
        .order_by("position")
        .values("code", "weight", "campaign__code")
    )
    return {
        "code": experiment.code,
        "name": experiment.name,
        "market": experiment.market.code,
        "hypothesis": experiment.hypothesis,
        "metric": experiment.metric,
        "window_days": experiment.window_days,
        "variants": [
            {"code": v["code"], "weight": v["weight"], "campaign": v["campaign__code"]}
            for v in variants
        ],
        "starts_at": experiment.starts_at,
        "ends_at": experiment.ends_at,
        "status": experiment_status(experiment, now),
        "members": Assignment.objects.filter(experiment=experiment).count(),
    }
