"""The club's reference data: markets, their stores, and the tiers.

Staff change these seldom; every domain above reads them.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.errors import CurrencyMismatch


class Market(models.Model):
    code = models.CharField(max_length=2, unique=True)
    name = models.CharField(max_length=100)
    currency = models.CharField(max_length=3)
    time_zone = models.CharField(max_length=64)
    language = models.CharField(max_length=8)
    earn_rate = models.DecimalField(
        max_digits=8, decimal_places=4, help_text="Points per currency unit."
    )
    point_value = models.DecimalField(
        max_digits=8, decimal_places=4, help_text="Currency per point."
    )
    return_window_days = models.PositiveIntegerField(
        default=30, help_text="Earned points stay pending this long."
    )
    points_validity_months = models.PositiveIntegerField(default=24)
    hold_minutes = models.PositiveIntegerField(default=15)
    excluded_categories = models.JSONField(
        default=list, blank=True, help_text="Product categories that earn nothing."
    )
    first_day_of_week = models.PositiveSmallIntegerField(
        default=0, help_text="0 = Monday ... 6 = Sunday."
    )
    inactive_retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=(
            "How long an inactive member (no purchase, no activity event, no points "
            "movement) is kept before being erased; empty keeps members forever."
        ),
    )

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(earn_rate__gte=0), name="market_earn_rate_gte_0"),
            models.CheckConstraint(condition=Q(point_value__gt=0), name="market_point_value_gt_0"),
        ]

    def __str__(self) -> str:
        return self.code

    def check_currency(self, currency: str) -> None:
        """Money is booked in the market's own currency, or not at all."""
        if currency != self.currency:
            raise CurrencyMismatch(f"Market {self.code} books in {self.currency}, not {currency}.")


class Store(models.Model):
    class Channel(models.TextChoices):
        STORE = "store"
        ONLINE = "online"

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="stores")
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.STORE)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Tier(models.Model):
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    names = models.JSONField(
        default=dict, blank=True, help_text='Per language, e.g. {"sv": "Guld", "en": "Gold"}.'
    )
    rank = models.PositiveSmallIntegerField(unique=True, help_text="0 is the base tier.")
    threshold = models.PositiveIntegerField(
        default=0, help_text="Qualifying points over a rolling 12 months."
    )
    multiplier = models.DecimalField(max_digits=4, decimal_places=2, default=1)

    class Meta:
        ordering = ["rank"]
        constraints = [
            models.CheckConstraint(condition=Q(multiplier__gt=0), name="tier_multiplier_gt_0"),
        ]

    def __str__(self) -> str:
        return self.name
