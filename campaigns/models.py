"""Campaigns (bonus points aimed by window, channel, store, tier, segment and
what was bought) and experiments (members assigned to variants, results).

A campaign's lists (`stores`, `tiers`, `segments`, `categories`, `skus`)
hold codes: an empty list restricts nothing. `spent_points` is the budget's
counter, kept by a conditional UPDATE for campaigns with a budget (the
purchase path) and net of returns; a campaign without a budget does not
touch its row on a purchase (no hot row): its spending is the sum of its
bonus rows.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q


class Campaign(models.Model):
    class Channel(models.TextChoices):
        ANY = "any"
        STORE = "store"
        ONLINE = "online"

    class Kind(models.TextChoices):
        MULTIPLIER = "multiplier"
        POINTS = "points"

    code = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.ANY)
    stores = models.JSONField(default=list, blank=True, help_text="Store codes; empty: all.")
    tiers = models.JSONField(default=list, blank=True, help_text="Tier codes; empty: all.")
    segments = models.JSONField(default=list, blank=True, help_text="Segments; empty: all.")
    categories = models.JSONField(default=list, blank=True, help_text="Line categories.")
    skus = models.JSONField(default=list, blank=True, help_text="Line SKUs.")
    min_amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    factor = models.DecimalField(
        max_digits=6, decimal_places=3, null=True, blank=True, help_text="Multiplier campaigns."
    )
    points = models.PositiveIntegerField(null=True, blank=True, help_text="Points campaigns.")
    budget_points = models.PositiveIntegerField(null=True, blank=True)
    # 64-bit like the ledger's points: an unbudgeted multiplier on the
    # contract's largest receipts books more than 2^31 points.
    spent_points = models.PositiveBigIntegerField(default=0)
    per_member_limit = models.PositiveIntegerField(null=True, blank=True)
    stackable = models.BooleanField(default=False)
    paused = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "code"], name="campaign_market_code"),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="campaign_window_order"
            ),
            models.CheckConstraint(
                condition=Q(channel__in=["any", "store", "online"]), name="campaign_channel"
            ),
            models.CheckConstraint(condition=Q(min_amount__gte=0), name="campaign_min_amount"),
            models.CheckConstraint(
                condition=(
                    Q(kind="multiplier", factor__gt=1, points__isnull=True)
                    | Q(kind="points", points__gt=0, factor__isnull=True)
                ),
                name="campaign_reward_kind",
            ),
            models.CheckConstraint(
                condition=Q(budget_points__isnull=True) | Q(budget_points__gt=0),
                name="campaign_budget_gt_0",
            ),
            models.CheckConstraint(
                condition=Q(budget_points__isnull=True) | Q(spent_points__lte=F("budget_points")),
                name="campaign_spent_le_budget",
            ),
            models.CheckConstraint(
                condition=Q(per_member_limit__isnull=True) | Q(per_member_limit__gt=0),
                name="campaign_limit_gt_0",
            ),
        ]
        indexes = [models.Index(fields=["market", "ends_at"], name="campaign_market_ends")]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"


class CampaignUsage(models.Model):
    """How many purchases of a member a campaign rewarded (per_member_limit)."""

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    member = models.ForeignKey("members.Member", on_delete=models.CASCADE, related_name="+")
    purchases = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "member"], name="campaign_usage_unique"),
        ]


class PurchaseBonus(models.Model):
    """A campaign's bonus on a purchase: booked in the purchase's `bonus`
    ledger entry, reversed by returns in proportion to the matching amount
    that came back."""

    purchase = models.ForeignKey("loyalty.Purchase", on_delete=models.PROTECT, related_name="+")
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="bonuses", db_index=False
    )
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    points = models.PositiveBigIntegerField()
    points_reversed = models.PositiveBigIntegerField(default=0)
    matching_amount = models.DecimalField(max_digits=12, decimal_places=2)
    returned_matching_amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    matching_skus = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "purchase bonuses"
        constraints = [
            models.UniqueConstraint(
                fields=["purchase", "campaign"], name="bonus_purchase_campaign"
            ),
            models.CheckConstraint(condition=Q(points__gt=0), name="bonus_points_gt_0"),
            models.CheckConstraint(
                condition=Q(points_reversed__lte=F("points")), name="bonus_reversed_le_points"
            ),
        ]
        indexes = [models.Index(fields=["campaign", "member"], name="bonus_campaign_member")]


class Experiment(models.Model):
    class Metric(models.TextChoices):
        REVENUE = "revenue"
        PURCHASES = "purchases"
        POINTS_EARNED = "points_earned"
        RETAINED = "retained"

    code = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="+")
    hypothesis = models.TextField(blank=True)
    metric = models.CharField(max_length=16, choices=Metric.choices)
    window_days = models.PositiveIntegerField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    results = models.JSONField(
        null=True, blank=True, help_text="Frozen when the experiment ended: answered as they are."
    )
    frozen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "code"], name="experiment_market_code"),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="experiment_window_order"
            ),
            models.CheckConstraint(
                condition=Q(window_days__gte=1, window_days__lte=366),
                name="experiment_window_days",
            ),
            models.CheckConstraint(
                condition=Q(metric__in=["revenue", "purchases", "points_earned", "retained"]),
                name="experiment_metric",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"


class Variant(models.Model):
    """One arm of an experiment; the first (position 0) is the baseline. A
    campaign named here rewards only the members assigned to this arm."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    code = models.CharField(max_length=64)
    position = models.PositiveSmallIntegerField()
    weight = models.PositiveIntegerField()
    campaign = models.OneToOneField(
        Campaign,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="variant",
    )

    class Meta:
        ordering = ["experiment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "code"], name="variant_code_unique"),
            models.UniqueConstraint(
                fields=["experiment", "position"], name="variant_position_unique"
            ),
            models.CheckConstraint(condition=Q(weight__gt=0), name="variant_weight_gt_0"),
        ]

    def __str__(self) -> str:
        return self.code


class Assignment(models.Model):
    """A member's variant, fixed at the first exposure: `assigned_at` never
    changes. The metric counts over [assigned_at, window_ends_at)."""

    experiment = models.ForeignKey(
        Experiment, on_delete=models.PROTECT, related_name="assignments", db_index=False
    )
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+")
    variant = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="assignments")
    assigned_at = models.DateTimeField()
    window_ends_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "member"], name="assignment_experiment_member"
            ),
        ]
