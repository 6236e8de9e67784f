"""Benefits: the club's non-monetary perks, who may have them, how often,
and the count of their uses.

A use is counted on `BenefitUsage`, one row per (member, benefit, period):
the service raises the count with one atomic upsert that refuses to pass the
allowance (see rewards/services.py). `BenefitUse` is the history, one row per
use; neither is ever edited by hand.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


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
    name = models.CharField(max_length=100, help_text="Shown where the member's language has no name.")
    names = models.JSONField(
        default=dict, blank=True,
        help_text='Names per language, e.g. {"sv": "Gratis kaffe", "en": "Free coffee"}.',
    )
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    tiers = models.ManyToManyField(
        "loyalty.Tier", related_name="benefits", help_text="The tiers whose members hold it."
    )
    markets = models.ManyToManyField(
        "loyalty.Market", blank=True, related_name="benefits", help_text="None means every market."
    )
    member_lists = models.ManyToManyField(
        MemberList, blank=True, related_name="benefits",
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
        names = self.names
        if not isinstance(names, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in names.items()
        ):
            raise ValidationError(
                {"names": 'An object of language and name, e.g. {"sv": "Gratis kaffe"}.'}
            )


class BenefitUsage(models.Model):
    """How often a member used a benefit in one period: the counter the
    allowance is checked against, atomically. `period_start` is the local
    date the period began in the member's market (1970-01-01 for a benefit
    whose period never resets)."""

    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="+",
                               db_index=False)
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
    store = models.ForeignKey("loyalty.Store", on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=8)
    api_client = models.ForeignKey(
        "config.ApiClient", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        db_index=False,
    )

    class Meta:
        indexes = [models.Index(fields=["member", "-used_at"], name="benefit_use_member_newest")]

    def __str__(self) -> str:
        return f"{self.benefit_id} by {self.member_id} at {self.used_at:%Y-%m-%d %H:%M}"
