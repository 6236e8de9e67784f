"""The demo club's welcome journey and gift rules (DESIGN.md), called from
loyalty.demo.demo_club_seed after the rewards are in place.

Idempotent like the rest of the demo: a mission is found by its code and a
gift rule by its kind and name, and left as it is when it exists.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from journeys.models import Mission
from journeys.services import journey_forget
from rewards.models import GiftRule, Reward

G = Mission.Goal

MISSIONS: list[dict[str, Any]] = [
    {
        "code": "complete-profile",
        "goal": G.PROFILE_COMPLETED,
        "window": (0, 14),
        "points": 100,
        "name": "Complete your profile",
        "names": {"sv": "Fyll i din profil", "en": "Complete your profile"},
        "description": "Tell us a little about yourself within two weeks.",
    },
    {
        "code": "first-purchase",
        "goal": G.FIRST_PURCHASE,
        "window": (0, 30),
        "points": 200,
        "name": "Your first purchase",
        "names": {"sv": "Ditt första köp", "en": "Your first purchase"},
        "description": "Shop with your card within 30 days.",
    },
    {
        "code": "second-purchase",
        "goal": G.SECOND_PURCHASE_WITHIN,
        "days": 30,
        "window": (0, 60),
        "points": 300,
        "name": "Come back within 30 days",
        "names": {"sv": "Kom tillbaka inom 30 dagar", "en": "Come back within 30 days"},
        "description": "A second purchase within 30 days of the first.",
    },
    {
        "code": "store-and-online",
        "goal": G.STORE_AND_ONLINE,
        "window": (0, 90),
        "reward": "coffee-voucher",
        "points": 250,
        "name": "Shop in store and online",
        "names": {"sv": "Handla i butik och på webben", "en": "Shop in store and online"},
        "description": "One purchase in a store and one in the web shop.",
    },
    {
        "code": "welcome-survey",
        "goal": G.SURVEY_ANSWERED,
        "window": (0, 30),
        "points": 100,
        "name": "Answer the welcome survey",
        "names": {"sv": "Svara på välkomstenkäten", "en": "Answer the welcome survey"},
        "description": "Two minutes about what you want from the club.",
    },
]

GIFT_RULES: list[dict[str, Any]] = [
    {"kind": GiftRule.Kind.BIRTHDAY, "name": "Birthday gift", "reward_points": 200},
    {"kind": GiftRule.Kind.WELCOME, "name": "Welcome gift", "reward_points": 50},
    {"kind": GiftRule.Kind.TIER_UPGRADE, "name": "Tier upgrade gift", "reward_points": 500},
]


def journey_seed() -> int:
    """Create the demo missions and gift rules that are missing; answers
    how many it created. The store-and-online mission gives a coffee voucher
    when the reward `coffee-voucher` exists, else 250 points."""
    created_count = 0
    with transaction.atomic():
        for order, spec in enumerate(MISSIONS):
            if Mission.objects.filter(code=spec["code"]).exists():
                continue
            reward = (
                Reward.objects.filter(code=spec["reward"]).first() if "reward" in spec else None
            )
            start, end = spec["window"]
            Mission.objects.create(
                code=spec["code"],
                name=spec["name"],
                names=spec["names"],
                description=spec["description"],
                order=order * 10,
                goal=spec["goal"],
                window_start_day=start,
                window_end_day=end,
                days=spec.get("days"),
                reward=reward,
                reward_points=None if reward else spec["points"],
            )
            created_count += 1
        for spec in GIFT_RULES:
            _, created = GiftRule.objects.get_or_create(
                kind=spec["kind"],
                name=spec["name"],
                defaults={"reward_points": spec["reward_points"]},
            )
            created_count += created
    journey_forget()
    return created_count
