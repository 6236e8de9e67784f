"""The purchase books in one statement on PostgreSQL (loyalty.ledger
.purchase_earn_book, the purchase and its event in another) and step by step
elsewhere (SQLite, a debt to pay, LOJAL_PURCHASE_ONE_STATEMENT off). The
rules are thus written twice, in SQL and in Python: the same random
receipts, booked through both forms for two members in the same state,
must write the same rows and answer alike."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from checkout.services import purchase_record
from club.models import Tier
from core.models import OutboxEvent
from loyalty.models import LedgerEntry, Lot, PointsAccount, Purchase, QualifyingMonth, TierChange
from loyalty.services import Line, points_adjust
from members.models import Member
from tests.factories import MemberFactory
from tests.helpers import SYSTEM, assert_ledger_consistent

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

receipts = st.lists(
    st.fixed_dictionaries(
        {
            # Amounts up to past the gold threshold in one receipt; 0 earns nothing.
            "amounts": st.lists(
                st.decimals(min_value=0, max_value=16_000, places=2), min_size=1, max_size=3
            ),
            "categories": st.lists(
                st.sampled_from(["tools", "garden", "giftcards"]), min_size=3, max_size=3
            ),
            # Pending (inside the 30-day window) or available at once, over
            # month ends: other qualifying months and expiry dates.
            "days_ago": st.integers(min_value=0, max_value=85),
        }
    ),
    min_size=1,
    max_size=4,
)
start = st.fixed_dictionaries(
    {
        "tier": st.sampled_from(["member", "silver", "gold"]),
        "points": st.integers(min_value=0, max_value=3_000),
        "override": st.booleans(),  # a staff override holds: no upgrade
        "qualifying": st.integers(min_value=0, max_value=14_000),
    }
)


def _member(state: dict[str, Any], today: date) -> Member:
    member = MemberFactory(market_code="SE")
    Member.objects.filter(pk=member.pk).update(
        tier=Tier.objects.get(code=state["tier"]),
        tier_valid_until=today + timedelta(days=200),
        tier_override_until=today + timedelta(days=30) if state["override"] else None,
    )
    if state["points"]:
        points_adjust(actor=SYSTEM, member=member, points=state["points"], reason="start")
    if state["qualifying"]:
        QualifyingMonth.objects.create(
            member=member, month=today.replace(day=1), points=state["qualifying"]
        )
    return member


def _book(member: Member, tag: str, receipts: list[dict[str, Any]], now: Any) -> list[Any]:
    answers = []
    for n, receipt in enumerate(receipts):
        lines = [
            Line(sku=f"SKU-{i}", amount=amount, category=receipt["categories"][i])
            for i, amount in enumerate(receipt["amounts"])
        ]
        answers.append(
            purchase_record(
                actor=SYSTEM,
                member_ref={"member_number": member.member_number},
                store_code="SE-001",
                receipt_id=f"{tag}{n}",
                channel="store",
                occurred_at=now - timedelta(days=receipt["days_ago"], minutes=1),
                currency="SEK",
                total=sum(lines_amount for lines_amount in receipt["amounts"]),
                lines=lines,
                now=now,
            )
        )
    return answers


def _state(member: Member, tag: str) -> dict[str, Any]:
    """Every row the purchases wrote or changed, with what differs between
    the two members by construction (ids, numbers, receipt tags) taken out."""
    member.refresh_from_db()
    purchases = {
        p.pk: p.receipt_id.removeprefix(tag)
        for p in Purchase.objects.filter(member=member).order_by("receipt_id")
    }

    def untag(text: str) -> str:
        return text.removeprefix(tag)

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k != "purchase_id"}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if value == member.member_number:
            return "<member>"
        return untag(value) if isinstance(value, str) else value

    return {
        "account": PointsAccount.objects.filter(member=member)
        .values_list("balance", "pending", "closed_at")
        .get(),
        "member": (
            member.tier.code,
            member.tier_valid_until,
            member.tier_override_until,
        ),
        "entries": [
            (
                e.kind,
                e.points,
                untag(e.reference),
                e.expires_on,
                e.reason,
                purchases.get(e.purchase_id),
            )
            for e in LedgerEntry.objects.filter(member=member).order_by("id")
        ],
        "lots": [
            (
                lot.points,
                lot.remaining,
                lot.available_on,
                lot.expires_on,
                lot.matured,
                purchases.get(lot.purchase_id),
            )
            for lot in Lot.objects.filter(member=member).order_by("id")
        ],
        "months": list(
            QualifyingMonth.objects.filter(member=member)
            .order_by("month")
            .values_list("month", "points")
        ),
        "tier_changes": list(
            TierChange.objects.filter(member=member)
            .order_by("id")
            .values_list(
                "from_tier__code", "to_tier__code", "cause", "qualifying_points", "valid_until"
            )
        ),
        "purchases": [
            (
                untag(p.receipt_id),
                p.store_id,
                p.channel,
                p.occurred_at,
                p.currency,
                p.total,
                p.qualifying_amount,
                p.lines,
                p.points_earned,
                p.base_points,
                p.returned_amount,
                p.points_reversed,
                p.imported,
                len(p.body_hash),
                scrub(p.response),
            )
            for p in Purchase.objects.filter(member=member).order_by("receipt_id")
        ],
        "events": [
            (e.topic, scrub(e.payload), e.delivered_at)
            for e in OutboxEvent.objects.filter(member=member).order_by("id")
        ],
    }


_examples = itertools.count()


@given(state=start, receipts=receipts)
@hypothesis_settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_one_statement_and_step_by_step_book_alike(
    demo: None, state: dict[str, Any], receipts: list[dict[str, Any]]
) -> None:
    assert django_settings.LOJAL_PURCHASE_ONE_STATEMENT  # the default form is the fused one
    now = timezone.now()
    today = timezone.localdate(now)
    fused, stepwise = _member(state, today), _member(state, today)
    example = next(_examples)  # receipt ids of their own in each example
    f, s = f"F{example}.", f"S{example}."
    fused_answers = _book(fused, f, receipts, now)
    with override_settings(LOJAL_PURCHASE_ONE_STATEMENT=False):
        stepwise_answers = _book(stepwise, s, receipts, now)

    def scrubbed(answers: list[Any], member: Member, tag: str) -> list[Any]:
        out = []
        for body, replayed in answers:
            body = {**body, "purchase_id": None, "receipt_id": body["receipt_id"][len(tag) :]}
            body["member"] = {**body["member"], "member_number": None}
            out.append((body, replayed))
        return out

    assert scrubbed(fused_answers, fused, f) == scrubbed(stepwise_answers, stepwise, s)
    assert _state(fused, f) == _state(stepwise, s)
    assert_ledger_consistent()


def _statements(member: Member, tag: str, receipt: list[dict[str, Any]], now: Any) -> int:
    with CaptureQueriesContext(connection) as queries:
        _book(member, tag, receipt, now)
    # The test's own transaction makes the service's a savepoint: not counted.
    return sum("SAVEPOINT" not in q["sql"] for q in queries.captured_queries)


def test_the_fused_form_takes_half_the_statements(demo: None) -> None:
    """What the fused form is for: the steady purchase (no tier change, no
    mission, no campaign) in four statements (the member, the lock, the
    booking, the purchase with its event) where the step-by-step form
    takes eight."""
    now = timezone.now()
    receipt = [{"amounts": [Decimal("120.00")], "categories": ["tools"] * 3, "days_ago": 0}]
    member = _member(
        {"tier": "member", "points": 0, "override": False, "qualifying": 0}, now.date()
    )
    _book(member, "W", receipt, now)  # the store and the campaigns are cached from here on
    assert _statements(member, "F", receipt, now) == 4
    with override_settings(LOJAL_PURCHASE_ONE_STATEMENT=False):
        assert _statements(member, "S", receipt, now) == 8
