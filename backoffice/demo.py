"""The demo club of the README, loaded by `manage.py seed_demo`: each
domain's reference data, then a few members with welcome points.

Idempotent: every row is found by its natural key and left as it is when it
exists, so a second run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from checkout.services import member_enrol
from club.demo import club_seed
from core.actors import system_actor
from journeys.demo import journey_seed
from loyalty.services import points_adjust
from members.models import Member
from rewards.demo import benefits_seed

SEED_ACTOR = system_actor("seed_demo")

MEMBERS = [
    # market, email, phone, first, last, welcome points
    ("SE", "anna.berg@example.se", "+46701234567", "Anna", "Berg", 1200),
    ("SE", "erik.lind@example.se", "+46702345678", "Erik", "Lind", 6400),
    ("NO", "kari.nord@example.no", "+4791234567", "Kari", "Nordmann", 300),
    ("DK", "mette.hansen@example.dk", "+4520123456", "Mette", "Hansen", 0),
    ("FI", "aino.virtanen@example.fi", "+358401234567", "Aino", "Virtanen", 800),
]


@dataclass
class SeedReport:
    created: int = 0

    def __str__(self) -> str:
        return (
            f"{self.created} rows created"
            if self.created
            else "nothing to do: the demo club is in place"
        )


def demo_club_seed() -> SeedReport:
    report = SeedReport(created=club_seed())
    for market, email, phone, first, last, points in MEMBERS:
        if Member.objects.filter(email__iexact=email).exists():
            continue
        member = member_enrol(
            actor=SEED_ACTOR,
            market_code=market,
            email=email,
            phone=phone,
            first_name=first,
            last_name=last,
            channel=Member.Channel.STORE,
            consents={"marketing_email": True, "marketing_sms": False, "profiling": True},
        )
        report.created += 1
        if points:
            points_adjust(
                member=member, points=points, reason="Demo club welcome points", actor=SEED_ACTOR
            )
    report.created += benefits_seed()
    report.created += journey_seed()
    return report
