"""The demo club's benefits and rewards (DESIGN.md), called from loyalty.demo.demo_club_seed.

Idempotent like the rest of the demo: a benefit that exists is left as it is.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from club.models import Market, Tier
from rewards.models import Benefit, Reward, RewardPrice
from rewards.selectors import catalogue_forget

K, P, C = Benefit.Kind, Benefit.Period, Benefit.Channel

BENEFITS: list[dict] = [
    {
        "code": "coffee",
        "kind": K.FREE_ITEM,
        "allowance": 1,
        "period": P.WEEK,
        "channel": C.STORE,
        "tiers": ["member", "silver", "gold"],
        "name": "Free coffee",
        "names": {"sv": "Gratis kaffe", "en": "Free coffee"},
        "description": "A free coffee a week in our stores.",
    },
    {
        "code": "free-shipping",
        "kind": K.FREE_SHIPPING,
        "allowance": None,
        "period": P.UNLIMITED,
        "channel": C.ONLINE,
        "tiers": ["silver", "gold"],
        "name": "Free shipping",
        "names": {"sv": "Fri frakt", "en": "Free shipping"},
        "description": "Free shipping on every online order.",
    },
    {
        "code": "early-access",
        "kind": K.EARLY_ACCESS,
        "allowance": None,
        "period": P.UNLIMITED,
        "channel": C.BOTH,
        "tiers": ["silver", "gold"],
        "name": "Early access",
        "names": {"sv": "Förtur till kampanjer", "en": "Early access"},
        "description": "Shop sales and launches before everyone else.",
    },
    {
        "code": "extended-returns",
        "kind": K.EXTENDED_RETURNS,
        "allowance": None,
        "period": P.UNLIMITED,
        "channel": C.BOTH,
        "tiers": ["gold"],
        "name": "Extended returns",
        "names": {"sv": "Förlängd returrätt", "en": "Extended returns"},
        "description": "90-day returns.",
    },
    {
        "code": "member-evening",
        "kind": K.EVENT,
        "allowance": 2,
        "period": P.YEAR,
        "channel": C.STORE,
        "tiers": ["gold"],
        "name": "Member evening",
        "names": {"sv": "Medlemskväll", "en": "Member evening"},
        "description": "Two member evenings a year in store.",
    },
]


def benefits_seed() -> int:
    """Create the demo benefits that are missing; answers how many it created."""
    created_count = 0
    tiers = {t.code: t for t in Tier.objects.all()}
    with transaction.atomic():
        for ordering, spec in enumerate(BENEFITS):
            spec = dict(spec)
            tier_codes = spec.pop("tiers")
            code = spec.pop("code")
            benefit, created = Benefit.objects.get_or_create(
                code=code, defaults={**spec, "ordering": ordering * 10}
            )
            if created:
                benefit.tiers.set([tiers[c] for c in tier_codes if c in tiers])
                created_count += 1
    catalogue_forget()
    return created_count + rewards_seed()


# --- rewards --------------------------------------------------------------

REWARDS: list[dict] = [
    {
        "code": "voucher-50",
        "points_cost": 500,
        "value_amount": Decimal("50.00"),
        "value_currency": "SEK",
        "validity_days": 60,
        "name": "50 SEK voucher",
        "names": {"sv": "Presentkort 50 kr", "en": "50 SEK voucher"},
        "description": "50 kronor off any purchase.",
        # The same voucher in the other markets' currencies, for the same points.
        "prices": {
            "NO": (500, Decimal("50.00")),
            "DK": (500, Decimal("35.00")),
            "FI": (500, Decimal("5.00")),
        },
    },
    {
        "code": "coffee-voucher",
        "points_cost": 150,
        "value_text": "A free coffee",
        "validity_days": 30,
        "name": "Coffee voucher",
        "names": {"sv": "Kaffekupong", "en": "Coffee voucher"},
        "description": "A free coffee in any of our stores.",
    },
    {
        "code": "tote-bag",
        "points_cost": 800,
        "value_text": "A Lojal tote bag",
        "stock": 100,
        "validity_days": 60,
        "name": "Tote bag",
        "names": {"sv": "Tygkasse", "en": "Tote bag"},
        "description": "Our canvas tote bag, while stocks last.",
    },
    {
        "code": "gold-lounge",
        "points_cost": 1000,
        "value_text": "A visit to the Guld lounge",
        "validity_days": 90,
        "tiers": ["gold"],
        "name": "Gold lounge",
        "names": {"sv": "Guldloungen", "en": "Gold lounge"},
        "description": "An evening in the Guld members' lounge.",
    },
]


def rewards_seed() -> int:
    """Create the demo rewards that are missing (with their market prices);
    answers how many it created. A reward that exists is left as it is."""
    created_count = 0
    tiers = {t.code: t for t in Tier.objects.all()}
    markets = {m.code: m for m in Market.objects.all()}
    with transaction.atomic():
        for ordering, spec in enumerate(REWARDS):
            spec = dict(spec)
            tier_codes = spec.pop("tiers", [])
            prices = spec.pop("prices", {})
            code = spec.pop("code")
            reward, created = Reward.objects.get_or_create(
                code=code, defaults={**spec, "ordering": ordering * 10}
            )
            if not created:
                continue
            created_count += 1
            reward.tiers.set([tiers[c] for c in tier_codes if c in tiers])
            for market_code, (points_cost, value_amount) in prices.items():
                if market_code in markets:
                    RewardPrice.objects.create(
                        reward=reward,
                        market=markets[market_code],
                        points_cost=points_cost,
                        value_amount=value_amount,
                    )
    return created_count
