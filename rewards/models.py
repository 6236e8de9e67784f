"""Benefits: the club's non-monetary perks, who may have them, how often,
and the count of their uses.

A use is counted on `BenefitUsage`, one row per (member, benefit, period):
the service raises the count with one atomic upsert that refuses to pass the
allowance (see rewards/services.py). `BenefitUse` is the history, one row per
use; neither is ever edited by hand.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from rewards.codes import code_format


def names_valid(names: Any) -> bool:
    """Names per language: {"sv": "...", "en": "..."}, none empty."""
    return isinstance(names, dict) and all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in names.items()
    )


def names_hint(example: str) -> str:
    return f'An object of language and name, e.g. {{"sv": "{example}"}}.'


class MemberList(models.Model):
    """A named segment of members (e.g. "Press", "Staff", "Pilot 2026"):
    a benefit limited to lists is for the members on one of them."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField("members.Member", blank=True, related_name="member_lists")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Benefit(models.Model):
    class Kind(models.TextChoices):
        FREE_ITEM = "free_item"
        FREE_SHIPPING = "free_shipping"
        EARLY_ACCESS = "early_access"
        EVENT = "event"
        EXTENDED_RETURNS = "extended_returns"
        PARTNER = "partner"

    class Period(models.TextChoices):
        DAY = "day"
        WEEK = "week"
        MONTH = "month"
        YEAR = "year"
        UNLIMITED = "unlimited", "unlimited (never resets)"

    class Channel(models.TextChoices):
        STORE = "store"
        ONLINE = "online"
        BOTH = "both"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(
        max_length=100, help_text="Shown where the member's language has no name."
    )
    names = models.JSONField(
        default=dict,
        blank=True,
        help_text='Names per language, e.g. {"sv": "Gratis kaffe", "en": "Free coffee"}.',
    )
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    tiers = models.ManyToManyField(
        "club.Tier", related_name="benefits", help_text="The tiers whose members hold it."
    )
    markets = models.ManyToManyField(
        "club.Market", blank=True, related_name="benefits", help_text="None means every market."
    )
    member_lists = models.ManyToManyField(
        MemberList,
        blank=True,
        related_name="benefits",
        help_text="If any, the member must also be on one of these lists.",
    )
    allowance = models.PositiveIntegerField(
        null=True, blank=True, help_text="Uses per period; empty means unlimited."
    )
    period = models.CharField(max_length=10, choices=Period.choices, default=Period.UNLIMITED)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.BOTH)
    active = models.BooleanField(default=True)
    ordering = models.PositiveSmallIntegerField(default=0, help_text="Lower comes first.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["ordering", "code"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not names_valid(self.names):
            raise ValidationError({"names": names_hint("Gratis kaffe")})


class BenefitUsage(models.Model):
    """How often a member used a benefit in one period: the counter the
    allowance is checked against, atomically. `period_start` is the local
    date the period began in the member's market (1970-01-01 for a benefit
    whose period never resets)."""

    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    benefit = models.ForeignKey(Benefit, on_delete=models.PROTECT, related_name="usages")
    period_start = models.DateField()
    count = models.IntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Its index also serves "this member's counters" (member first).
            models.UniqueConstraint(
                fields=["member", "benefit", "period_start"], name="benefit_usage_unique"
            ),
            models.CheckConstraint(condition=Q(count__gte=0), name="benefit_usage_count_gte_0"),
        ]


class BenefitUse(models.Model):
    """One use of a benefit: the history staff and reports read."""

    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="benefit_uses", db_index=False
    )
    benefit = models.ForeignKey(Benefit, on_delete=models.PROTECT, related_name="uses")
    period_start = models.DateField()
    used_at = models.DateTimeField()
    store = models.ForeignKey("club.Store", on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=8)
    api_client = models.ForeignKey(
        "core.ApiClient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )

    class Meta:
        indexes = [models.Index(fields=["member", "-used_at"], name="benefit_use_member_newest")]

    def __str__(self) -> str:
        return f"{self.benefit_id} by {self.member_id} at {self.used_at:%Y-%m-%d %H:%M}"


# --- rewards and vouchers ----------------------------------------------------


class Reward(models.Model):
    """Something a member claims for points (or is given by a mission or
    staff): it issues a single-use voucher with an unguessable code.

    The voucher is worth `value_amount` in `value_currency`, or what
    `value_text` says ("a free coffee"). `RewardPrice` sets another cost,
    and another value, per market.
    """

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(
        max_length=100, help_text="Shown where the member's language has no name."
    )
    names = models.JSONField(
        default=dict,
        blank=True,
        help_text='Names per language, e.g. {"sv": "Presentkort 50 kr", "en": "50 SEK voucher"}.',
    )
    description = models.TextField(blank=True)
    points_cost = models.PositiveIntegerField(
        help_text="Points a claim costs, unless the member's market has its own price."
    )
    value_amount = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="What the voucher is worth in money; empty for a benefit in kind.",
    )
    value_currency = models.CharField(max_length=3, blank=True)
    value_text = models.CharField(
        max_length=200, blank=True, help_text='What the voucher gives, e.g. "a free coffee".'
    )
    validity_days = models.PositiveIntegerField(
        default=30, help_text="A voucher is valid this long."
    )
    stock = models.PositiveIntegerField(
        null=True, blank=True, help_text="Vouchers left to issue; empty means unlimited."
    )
    tiers = models.ManyToManyField(
        "club.Tier",
        blank=True,
        related_name="rewards",
        help_text="The tiers whose members may claim it; none means every tier.",
    )
    markets = models.ManyToManyField(
        "club.Market", blank=True, related_name="rewards", help_text="None means every market."
    )
    active_from = models.DateTimeField(null=True, blank=True)
    active_until = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    ordering = models.PositiveSmallIntegerField(default=0, help_text="Lower comes first.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["ordering", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(points_cost__gt=0), name="reward_points_cost_gt_0"),
            models.CheckConstraint(
                condition=Q(stock__isnull=True) | Q(stock__gte=0), name="reward_stock_gte_0"
            ),
            models.CheckConstraint(condition=Q(validity_days__gt=0), name="reward_validity_gt_0"),
            models.CheckConstraint(
                condition=Q(value_amount__isnull=True)
                | (Q(value_amount__gt=0) & ~Q(value_currency="")),
                name="reward_value_amount_with_currency",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not names_valid(self.names):
            errors["names"] = names_hint("Presentkort")
        if self.value_amount is not None and not self.value_currency:
            errors["value_currency"] = "Required with an amount."
        if self.value_amount is None and not self.value_text:
            errors["value_text"] = "Say what the voucher gives, or give it an amount."
        if self.active_from and self.active_until and self.active_until <= self.active_from:
            errors["active_until"] = "Must be after active from."
        if errors:
            raise ValidationError(errors)


class RewardPrice(models.Model):
    """A reward's cost in one market, and optionally its value there (a
    50 SEK voucher is a 50 NOK one in Norway)."""

    reward = models.ForeignKey(Reward, on_delete=models.CASCADE, related_name="prices")
    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="+")
    points_cost = models.PositiveIntegerField()
    value_amount = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="The voucher's worth in this market's currency; empty: the reward's own.",
    )

    class Meta:
        ordering = ["market__code"]
        constraints = [
            models.UniqueConstraint(fields=["reward", "market"], name="reward_price_market_unique"),
            models.CheckConstraint(condition=Q(points_cost__gt=0), name="reward_price_cost_gt_0"),
            models.CheckConstraint(
                condition=Q(value_amount__isnull=True) | Q(value_amount__gt=0),
                name="reward_price_value_gt_0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reward_id} in {self.market_id}: {self.points_cost}"


class Voucher(models.Model):
    """One single-use voucher. `code` is stored without dashes, upper case
    (see rewards.codes); its value is copied from the reward when issued, so
    a later edit of the reward does not change vouchers out there."""

    class Status(models.TextChoices):
        ISSUED = "issued"
        REDEEMED = "redeemed"
        EXPIRED = "expired"
        CANCELLED = "cancelled"

    class Source(models.TextChoices):
        CLAIM = "claim"
        GIFT = "gift"
        MISSION = "mission"
        STAFF = "staff"

    code = models.CharField(max_length=16, unique=True)
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="vouchers", db_index=False
    )
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="vouchers")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ISSUED)
    source = models.CharField(max_length=16, choices=Source.choices)
    points_cost = models.PositiveIntegerField(
        default=0, help_text="Points the member paid (claims)."
    )
    value_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    value_currency = models.CharField(max_length=3, blank=True)
    value_text = models.CharField(max_length=200, blank=True)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeemed_store = models.ForeignKey(
        "club.Store",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    redeemed_receipt_id = models.CharField(max_length=64, blank=True)
    dedupe_key = models.CharField(
        max_length=200,
        unique=True,
        null=True,
        blank=True,
        help_text="Issued once per key (a mission's or a gift job's own key).",
    )
    ledger_entry = models.OneToOneField(
        "loyalty.LedgerEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="voucher",
        help_text="The redeem entry that paid for a claim.",
    )
    api_client = models.ForeignKey(
        "core.ApiClient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    reactivated = models.BooleanField(default=False)
    reactivated_at = models.DateTimeField(null=True, blank=True)
    reactivated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    reactivation_note = models.CharField(
        max_length=255, blank=True, help_text="The redemption a reactivation undid."
    )

    class Meta:
        permissions = [("reactivate_voucher", "Can reactivate a redeemed voucher")]
        indexes = [
            models.Index(fields=["member", "-id"], name="voucher_member_newest"),
            # The expiry job walks the issued vouchers by expiry.
            models.Index(
                fields=["expires_at", "id"],
                condition=Q(status="issued"),
                name="voucher_issued_expiry",
            ),
            models.Index(
                fields=["redeemed_store", "redeemed_receipt_id"],
                condition=Q(redeemed_store__isnull=False),
                name="voucher_redeemed_receipt",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="redeemed")
                | (Q(redeemed_at__isnull=False) & Q(redeemed_store__isnull=False)),
                name="voucher_redeemed_has_store",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("issued_at")),
                name="voucher_expires_after_issue",
            ),
        ]

    def __str__(self) -> str:
        return code_format(self.code)


class GiftRule(models.Model):
    """What the gift jobs give: on a birthday (once a year, in the birthday
    month), on a tier upgrade (once per upgrade), on enrolment (once)."""

    class Kind(models.TextChoices):
        BIRTHDAY = "birthday"
        TIER_UPGRADE = "tier_upgrade", "tier upgrade"
        WELCOME = "welcome"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reward_points = models.PositiveIntegerField(null=True, blank=True, help_text="Points, or:")
    reward = models.ForeignKey(
        Reward,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="gift_rules",
        help_text="A voucher of this reward (no points spent).",
    )
    tier = models.ForeignKey(
        "club.Tier",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Tier upgrade: only upgrades to this tier; empty means any upgrade.",
    )
    active = models.BooleanField(default=True)
    markets = models.ManyToManyField(
        "club.Market", blank=True, related_name="gift_rules", help_text="None means every market."
    )
    created_at = models.DateTimeField(
        auto_now_add=True,
        help_text="Upgrades and enrolments before this are not gifted after the fact.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(reward_points__gt=0) & Q(reward__isnull=True))
                | (Q(reward_points__isnull=True) & Q(reward__isnull=False)),
                name="gift_rule_one_reward",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if (self.reward_points is None) == (self.reward_id is None):
            raise ValidationError({"reward_points": "Give points or a reward, not both."})
        if self.tier_id is not None and self.kind != self.Kind.TIER_UPGRADE:
            raise ValidationError({"tier": "Only for a tier upgrade gift."})


class Gift(models.Model):
    """One gift given: `dedupe_key` (e.g. "birthday:2026:<member id>",
    "tier_upgrade:<tier change id>", "welcome:<member id>") makes each
    happen once however often, or however many at once, the jobs run."""

    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="gifts", db_index=False
    )
    rule = models.ForeignKey(GiftRule, on_delete=models.PROTECT, related_name="gifts")
    kind = models.CharField(max_length=16, choices=GiftRule.Kind.choices)
    dedupe_key = models.CharField(max_length=100, unique=True)
    points = models.PositiveIntegerField(default=0)
    entry = models.OneToOneField(
        "loyalty.LedgerEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    voucher = models.OneToOneField(
        Voucher, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["member", "-id"], name="gift_member_newest")]

    def __str__(self) -> str:
        return self.dedupe_key
