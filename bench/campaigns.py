"""`make bench`, campaigns: what five active campaigns (two of them matching)
cost a purchase, against the same purchase with none.

    python -m bench.campaigns --out .bench [--purchases 300] [--slices 8]

In-process, through Django's test client (the whole stack: key, throttle,
parsing, the purchase's transaction, rendering) on the bench database that
bench.seed prepared, on a member of SE at a time. The five campaigns of SE:

    BENCH-TOOLS   x2 on `tools`, stackable, with a budget   (matches)
    BENCH-VISIT   +50 points, per-member limit 1000          (matches)
    BENCH-GARDEN  x2 on `garden`                              (no: no such line)
    BENCH-GOLD    +100 for Guld members                       (no: the tier)
    BENCH-WEB     x3 online                                   (no: the channel)

so a purchase of 100.00 of tools earns 100 + 100 + 50. The two cases run
in turns, slice by slice (A B, B A, ...), so whatever else the machine does
falls on both alike: "none" has the five paused (the purchase then finds no
candidate), "five" has them active. Figures: the median over the slices of
the wall time per purchase and of this process's CPU per purchase, the
statements per purchase, and the cost of the campaigns as a share. The
campaigns are left paused. Exit 0 when measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

TARGET_SHARE = 0.15

CAMPAIGNS = [
    {"code": "BENCH-TOOLS", "kind": "multiplier", "factor": Decimal("2"), "categories": ["tools"],
     "stackable": True, "budget_points": 2_000_000_000},
    {"code": "BENCH-VISIT", "kind": "points", "points": 50, "per_member_limit": 1000},
    {"code": "BENCH-GARDEN", "kind": "multiplier", "factor": Decimal("2"),
     "categories": ["garden"]},
    {"code": "BENCH-GOLD", "kind": "points", "points": 100, "tiers": ["gold"]},
    {"code": "BENCH-WEB", "kind": "multiplier", "factor": Decimal("3"), "channel": "online"},
]  # fmt: skip


def log(message: str) -> None:
    print(f"  campaigns: {message}", flush=True)


def ensure_campaigns() -> list[int]:
    from django.utils import timezone

    from campaigns.models import Campaign
    from campaigns.services import campaign_create
    from core.actors import system_actor

    actor = system_actor("bench")
    now = timezone.now()
    ids = []
    for spec in CAMPAIGNS:
        spec = dict(spec)
        code = spec.pop("code")
        found = Campaign.objects.filter(market__code="SE", code=code).first()
        if found is None:
            found = campaign_create(
                actor=actor,
                code=code,
                name=code.title(),
                market_code="SE",
                starts_at=now - timedelta(days=1),
                ends_at=now + timedelta(days=365),
                **spec,
            )
        Campaign.objects.filter(pk=found.pk).update(
            starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=365)
        )
        ids.append(found.pk)
    return ids


class Statements(list):
    """A connection's execute wrapper that keeps the SQL it sees (Django's
    query log is reset at each request's start, so it cannot count one)."""

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        self.append(sql)
        return execute(sql, params, many, context)


def set_paused(ids: list[int], paused: bool) -> None:
    from campaigns.models import Campaign
    from campaigns.services import campaigns_forget

    Campaign.objects.filter(pk__in=ids).update(paused=paused)
    campaigns_forget()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--purchases", type=int, default=300, help="per slice")
    parser.add_argument("--slices", type=int, default=8, help="per case")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")

    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from members.models import Member

    raw_key = (args.out / "api_key").read_text().strip()
    members = list(
        Member.objects.filter(market__code="SE", status="active", tier__rank=0)
        .order_by("id")
        .values_list("member_number", flat=True)[:2000]
    )
    if len(members) < 100:
        sys.exit("bench: campaigns need the seeded SE members (run bench.seed first)")
    ids = ensure_campaigns()
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    counter = iter(range(10**9))

    def purchase(member: str | None = None) -> dict:
        i = next(counter)
        body = {
            "member": {"member_number": member or members[i % len(members)]},
            "store_code": "SE-001",
            "receipt_id": f"CB-{uuid.uuid4().hex[:20]}",
            "channel": "store",
            "occurred_at": (timezone.now() - timedelta(seconds=5)).isoformat(),
            "currency": "SEK",
            "total": "100.00",
            "lines": [{"sku": "DRILL", "category": "tools", "quantity": 1, "amount": "100.00"}],
        }
        response = client.post("/api/v1/purchases", body, content_type="application/json")
        if response.status_code != 201:
            raise SystemExit(
                f"bench: purchase answered {response.status_code}: {response.content[:300]}"
            )
        return response.json()

    def case(paused: bool) -> tuple[float, float]:
        set_paused(ids, paused)
        purchase()  # the snapshot loads outside the measured part
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.purchases):
            purchase()
        return (
            (time.perf_counter() - wall) / args.purchases,
            (time.process_time() - cpu) / args.purchases,
        )

    try:
        # What each case answers and how many statements it takes.
        set_paused(ids, False)
        purchase()
        five_queries, none_queries = Statements(), Statements()
        with connection.execute_wrapper(five_queries):
            answer = purchase(members[0])
        if answer["points_earned"] != 250 or len(answer["bonuses"]) != 2:
            raise SystemExit(f"bench: expected two bonuses (250 points), got {answer}")
        set_paused(ids, True)
        purchase()
        with connection.execute_wrapper(none_queries):
            plain = purchase(members[0])
        if plain["bonuses"] or plain["points_earned"] != 100:
            raise SystemExit(f"bench: expected no bonus, got {plain}")
        for _ in range(50):  # warm-up
            purchase()
        results: dict[str, list[tuple[float, float]]] = {"none": [], "five": []}
        for s in range(args.slices):
            order = [("none", True), ("five", False)]
            if s % 2:
                order.reverse()
            for name, paused in order:
                results[name].append(case(paused))
    finally:
        set_paused(ids, True)

    def median(name: str, index: int) -> float:
        return statistics.median(r[index] for r in results[name]) * 1000

    none_wall, five_wall = median("none", 0), median("five", 0)
    none_cpu, five_cpu = median("none", 1), median("five", 1)
    share = five_wall / none_wall - 1
    log(
        f"{args.slices} slices of {args.purchases} purchases each way, one at a time "
        f"(SE, 100.00 of tools; five campaigns, two matching: +100 and +50)"
    )
    log(f"statements per purchase: none {len(none_queries)}, five {len(five_queries)}")
    if os.environ.get("BENCH_VERBOSE"):
        for sql in five_queries:
            log("  " + " ".join(sql.split())[:150])
    log(f"none: {none_wall:.2f} ms wall, {none_cpu:.2f} ms CPU of this process per purchase")
    log(f"five: {five_wall:.2f} ms wall, {five_cpu:.2f} ms CPU of this process per purchase")
    log(
        f"campaigns cost {share:+.1%} of a purchase's wall time "
        f"({five_cpu / none_cpu - 1:+.1%} of its CPU here); target < {TARGET_SHARE:.0%}: "
        + ("met" if share < TARGET_SHARE else "MISSED")
    )


if __name__ == "__main__":
    main()
