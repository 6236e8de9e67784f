"""The demo club's reference data (markets on the same terms, stores,
tiers). Idempotent: found by code, left as it is when it exists."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from club.models import Market, Store, Tier

MARKETS = [
    # code, name, currency, time zone, language
    ("SE", "Sverige", "SEK", "Europe/Stockholm", "sv"),
    ("NO", "Norge", "NOK", "Europe/Oslo", "nb"),
    ("DK", "Danmark", "DKK", "Europe/Copenhagen", "da"),
    ("FI", "Suomi", "EUR", "Europe/Helsinki", "fi"),
]
SAME_TERMS = {
    "earn_rate": Decimal("1"),
    "point_value": Decimal("0.01"),
    "return_window_days": 30,
    "points_validity_months": 24,
    "hold_minutes": 15,
    "excluded_categories": ["giftcards"],
    "first_day_of_week": 0,
}
STORES = [
    ("SE-001", "Stockholm City", "SE", "store"),
    ("SE-002", "Göteborg Nordstan", "SE", "store"),
    ("SE-WEB", "Webbutik Sverige", "SE", "online"),
    ("NO-001", "Oslo Sentrum", "NO", "store"),
    ("DK-001", "København Strøget", "DK", "store"),
    ("FI-001", "Helsinki Keskusta", "FI", "store"),
]
TIERS = [
    ("member", "Medlem", 0, 0, Decimal("1")),
    ("silver", "Silver", 1, 5_000, Decimal("1.25")),
    ("gold", "Guld", 2, 15_000, Decimal("1.5")),
]


def club_seed() -> int:
    """Create the demo markets, stores and tiers that are missing; answers how many."""
    created_count = 0
    with transaction.atomic():
        for code, name, currency, tz, language in MARKETS:
            _, created = Market.objects.get_or_create(
                code=code,
                defaults={
                    "name": name,
                    "currency": currency,
                    "time_zone": tz,
                    "language": language,
                    **SAME_TERMS,
                },
            )
            created_count += created
        markets = {m.code: m for m in Market.objects.all()}
        for code, name, market, channel in STORES:
            _, created = Store.objects.get_or_create(
                code=code, defaults={"name": name, "market": markets[market], "channel": channel}
            )
            created_count += created
        for code, name, rank, threshold, multiplier in TIERS:
            _, created = Tier.objects.get_or_create(
                code=code,
                defaults={
                    "name": name,
                    "rank": rank,
                    "threshold": threshold,
                    "multiplier": multiplier,
                },
            )
            created_count += created
    return created_count
