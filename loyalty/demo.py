"""The demo club of DESIGN.md, loaded by `manage.py seed_demo`.

Idempotent: every row is found by its natural key and left as it is when it
exists, so a second run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from config.auth import Client
from loyalty.models import Market, Store, Tier
from members.models import Member

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
MEMBERS = [
    # market, email, phone, first, last, welcome points
    ("SE", "anna.berg@example.se", "+46701234567", "Anna", "Berg", 1200),
    ("SE", "erik.lind@example.se", "+46702345678", "Erik", "Lind", 6400),
    ("NO", "kari.nord@example.no", "+4791234567", "Kari", "Nordmann", 300),
    ("DK", "mette.hansen@example.dk", "+4520123456", "Mette", "Hansen", 0),
    ("FI", "aino.virtanen@example.fi", "+358401234567", "Aino", "Virtanen", 800),
]

SEED_CLIENT = Client(id=0, name="seed_demo", scopes=frozenset(), market_ids=None,
                     rate_per_minute=None, expires_at=None)


@dataclass
class SeedReport:
    created: int = 0

    def __str__(self) -> str:
        return f"{self.created} rows created" if self.created else "nothing to do: the demo club is in place"


def demo_club_seed() -> SeedReport:
    from loyalty.services import points_adjust
    from members.services import member_enrol

    report = SeedReport()
    with transaction.atomic():
        for code, name, currency, tz, language in MARKETS:
            _, created = Market.objects.get_or_create(
                code=code,
                defaults={"name": name, "currency": currency, "time_zone": tz,
                          "language": language, **SAME_TERMS},
            )
            report.created += created
        markets = {m.code: m for m in Market.objects.all()}
        for code, name, market, channel in STORES:
            _, created = Store.objects.get_or_create(
                code=code, defaults={"name": name, "market": markets[market], "channel": channel}
            )
            report.created += created
        for code, name, rank, threshold, multiplier in TIERS:
            _, created = Tier.objects.get_or_create(
                code=code,
                defaults={"name": name, "rank": rank, "threshold": threshold, "multiplier": multiplier},
            )
            report.created += created
    for market, email, phone, first, last, points in MEMBERS:
        if Member.objects.filter(email__iexact=email).exists():
            continue
        member = member_enrol(
            client=SEED_CLIENT, market_code=market, email=email, phone=phone, first_name=first,
            last_name=last, channel=Member.Channel.STORE,
            consents={"marketing_email": True, "marketing_sms": False, "profiling": True},
        )
        report.created += 1
        if points:
            points_adjust(member=member, points=points, reason="Demo club welcome points")
    from rewards.demo import benefits_seed

    report.created += benefits_seed()
    from rewards.journey_demo import journey_seed

    report.created += journey_seed()
    return report
