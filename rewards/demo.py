"""The demo club's benefits (DESIGN.md), called from loyalty.demo.demo_club_seed.

Idempotent like the rest of the demo: a benefit that exists is left as it is.
"""

from __future__ import annotations

from django.db import transaction

from loyalty.models import Tier
from rewards.models import Benefit
from rewards.selectors import catalogue_forget

K, P, C = Benefit.Kind, Benefit.Period, Benefit.Channel

BENEFITS: list[dict] = [
    {"code": "coffee", "kind": K.FREE_ITEM, "allowance": 1, "period": P.WEEK, "channel": C.STORE,
     "tiers": ["member", "silver", "gold"],
     "name": "Free coffee", "names": {"sv": "Gratis kaffe", "en": "Free coffee"},
     "description": "A free coffee a week in our stores."},
    {"code": "free-shipping", "kind": K.FREE_SHIPPING, "allowance": None, "period": P.UNLIMITED,
     "channel": C.ONLINE, "tiers": ["silver", "gold"],
     "name": "Free shipping", "names": {"sv": "Fri frakt", "en": "Free shipping"},
     "description": "Free shipping on every online order."},
    {"code": "early-access", "kind": K.EARLY_ACCESS, "allowance": None, "period": P.UNLIMITED,
     "channel": C.BOTH, "tiers": ["silver", "gold"],
     "name": "Early access", "names": {"sv": "Förtur till kampanjer", "en": "Early access"},
     "description": "Shop sales and launches before everyone else."},
    {"code": "extended-returns", "kind": K.EXTENDED_RETURNS, "allowance": None,
     "period": P.UNLIMITED, "channel": C.BOTH, "tiers": ["gold"],
     "name": "Extended returns", "names": {"sv": "Förlängd returrätt", "en": "Extended returns"},
     "description": "90-day returns."},
    {"code": "member-evening", "kind": K.EVENT, "allowance": 2, "period": P.YEAR,
     "channel": C.STORE, "tiers": ["gold"],
     "name": "Member evening", "names": {"sv": "Medlemskväll", "en": "Member evening"},
     "description": "Two member evenings a year in store."},
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
    return created_count
