"""Staff admin for the club's reference data: markets, stores, tiers."""

from __future__ import annotations

from django.contrib import admin

from club.models import Market, Store, Tier


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "currency",
        "time_zone",
        "language",
        "earn_rate",
        "point_value",
        "return_window_days",
        "points_validity_months",
        "hold_minutes",
        "inactive_retention_days",
    ]
    search_fields = ["code", "name"]


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "market", "channel"]
    list_filter = ["market", "channel"]
    list_select_related = ["market"]
    search_fields = ["code", "name"]


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "rank", "threshold", "multiplier"]
    list_display_links = ["code"]
    ordering = ["rank"]
    # `names` is JSON per language ({"sv": "Guld", "en": "Gold"}): the default
    # JSON widget edits it; `name` is the fallback.
    fields = ["code", "name", "names", "rank", "threshold", "multiplier"]
