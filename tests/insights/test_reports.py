"""GET /api/v1/insights/retention and /insights/liability: a cohort counted
by hand, and the liability's roll-forward against a ledger built with every
kind of entry."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from checkout.services import purchase_record, return_record
from club.dates import today_for
from club.models import Market
from insights.selectors import _add_months, liability_report
from loyalty.lifecycle import points_expire
from loyalty.models import LedgerEntry, Lot, PointsAccount
from loyalty.services import Line, points_adjust, points_bonus, points_redeem, redemption_cancel
from tests.helpers import SYSTEM, assert_ledger_consistent, assert_problem, buy, enrol_at, give_back

pytestmark = pytest.mark.django_db

RETENTION = "/api/v1/insights/retention"
LIABILITY = "/api/v1/insights/liability"
STOCKHOLM = ZoneInfo("Europe/Stockholm")
COPENHAGEN = ZoneInfo("Europe/Copenhagen")


def _on(month: date, day: int, tz: ZoneInfo = STOCKHOLM) -> datetime:
    return datetime.combine(month.replace(day=day), time(12), tzinfo=tz)


def test_a_cohort_counted_by_hand(api, make_member):
    """Cohort M-2 (four members): A buys in M-2 and M-1; B's purchase in M-1
    is returned whole and B buys in M; C's purchase in M-2 is returned in
    part; D never buys. active = [A and C, A, B] = [2, 1, 1], retention
    [0.5, 0.25, 0.25]. Cohort M-1: E buys in M: [0, 1]."""
    se = Market.objects.get(code="SE")
    now = timezone.now()
    this_month = today_for(se).replace(day=1)
    m2, m1 = _add_months(this_month, -2), _add_months(this_month, -1)
    a, b, c, d, e = (make_member() for _ in range(5))
    for member in (a, b, c, d):
        enrol_at(member, _on(m2, 3))
    enrol_at(e, _on(m1, 2))
    buy(a, occurred_at=_on(m2, 20))
    buy(a, occurred_at=_on(m1, 10))
    give_back(buy(b, "80.00", occurred_at=_on(m1, 10)), "80.00")
    buy(b, occurred_at=now - timedelta(minutes=1))
    give_back(buy(c, "100.00", occurred_at=_on(m2, 21)), "40.00")
    buy(e, occurred_at=now - timedelta(minutes=1))
    # Another market's member of the same month counts nowhere here.
    enrol_at(make_member(market="NO"), _on(m2, 3, ZoneInfo("Europe/Oslo")))

    body = api.get(RETENTION, {"market": "SE", "from": m2.strftime("%Y-%m")}).json()
    cohorts = {c["cohort"]: c for c in body["cohorts"]}
    assert body["market"] == "SE"
    assert cohorts[m2.strftime("%Y-%m")] == {
        "cohort": m2.strftime("%Y-%m"),
        "members": 4,
        "active": [2, 1, 1],
        "retention": [0.5, 0.25, 0.25],
    }
    assert cohorts[m1.strftime("%Y-%m")]["active"] == [0, 1]
    assert cohorts[m1.strftime("%Y-%m")]["retention"] == [0.0, 1.0]
    # Members enrolled now (the demo's, the test's others) form this month's cohort.
    assert list(cohorts) == sorted(cohorts)

    only = api.get(
        RETENTION, {"market": "SE", "from": m2.strftime("%Y-%m"), "to": m2.strftime("%Y-%m")}
    ).json()
    assert [c["cohort"] for c in only["cohorts"]] == [m2.strftime("%Y-%m")]


@pytest.mark.parametrize(
    "query",
    [
        {"market": "SE", "from": "2026-13"},
        {"market": "SE", "from": "2026-05", "to": "2026-04"},
        {"market": "SE", "to": "26-04"},
        {"market": "SE", "from": "1990-01", "to": "2026-01"},
    ],
)
def test_bad_retention_queries_answer_400(api, query):
    assert_problem(api.get(RETENTION, query), 400, "validation_error")


def _dk_buy(member, amount: str) -> dict:
    body, _ = purchase_record(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        store_code="DK-001",
        receipt_id=f"R-{uuid.uuid4().hex[:12]}",
        channel="store",
        occurred_at=timezone.now() - timedelta(minutes=5),
        currency="DKK",
        total=Decimal(amount),
        lines=[Line(sku="SKU-1", amount=Decimal(amount), category="tools")],
    )
    return body


def _dk_return(purchase: dict, amount: str) -> None:
    return_record(
        actor=SYSTEM,
        store_code="DK-001",
        receipt_id=f"RET-{uuid.uuid4().hex[:12]}",
        original_store_code="DK-001",
        original_receipt_id=purchase["receipt_id"],
        occurred_at=timezone.now() - timedelta(minutes=1),
        currency="DKK",
        total=Decimal(amount),
        lines=[Line(sku="SKU-1", amount=Decimal(amount))],
    )


def _backdate(entry: LedgerEntry, moment: datetime) -> None:
    """Entries are append-only; the test moves one into an earlier month."""
    with connection.cursor() as cursor:
        # In the test's transaction: rolled back with it.
        cursor.execute("SET LOCAL session_replication_role = replica")
        LedgerEntry.objects.filter(pk=entry.pk).update(created_at=moment)
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")


@pytest.mark.postgres
def test_the_liability_rolls_forward_to_the_ledger(api, make_member):
    """Denmark, two members, every kind of entry.
    Y: +250 adjusted in M-3, expired in M-1.
    X in M: earned 1000 (pending), returned -200, adjusted +500, bonus +300,
    redeemed -400, redeemed -100 and cancelled +100, a hold of 50 (redeemed).
    Total 1150: pending 800, available 350, worth 11.50 DKK; held 50;
    breakage 250 / (250 + 550 - 100) = 0.3571."""
    dk = Market.objects.get(code="DK")
    assert not LedgerEntry.objects.filter(member__market=dk).exists()
    today = today_for(dk)
    this_month = today.replace(day=1)
    m3, m1 = _add_months(this_month, -3), _add_months(this_month, -1)
    x, y = make_member(market="DK"), make_member(market="DK")

    y_adjust = points_adjust(actor=SYSTEM, member=y, points=250, reason="goodwill")
    Lot.objects.filter(member=y).update(expires_on=today - timedelta(days=1))
    points_expire(as_of=timezone.now())
    _backdate(LedgerEntry.objects.get(pk=y_adjust["entry"]["id"]), _on(m3, 10, COPENHAGEN))
    _backdate(LedgerEntry.objects.get(member=y, kind="expire"), _on(m1, 10, COPENHAGEN))

    purchase = _dk_buy(x, "1000.00")
    _dk_return(purchase, "200.00")
    points_adjust(actor=SYSTEM, member=x, points=500, reason="goodwill")
    x.refresh_from_db()
    bonus = points_bonus(member=x, points=300, reason="gift", reference="test:bonus")
    ref = {"member_number": x.member_number}
    points_redeem(actor=SYSTEM, member_ref=ref, points=400, store_code="DK-001")
    cancelled = points_redeem(actor=SYSTEM, member_ref=ref, points=100, store_code="DK-001")
    redemption_cancel(actor=SYSTEM, redemption_id=cancelled["redemption_id"])
    points_redeem(actor=SYSTEM, member_ref=ref, points=50, store_code="DK-001", capture=False)
    # The bonus's lot (untouched: the redemptions took from the adjustment's,
    # earlier) now expires at the end of next month.
    next_month_end = _add_months(this_month, 2) - timedelta(days=1)
    Lot.objects.filter(entry=bonus).update(expires_on=next_month_end)
    assert_ledger_consistent()

    body = api.get(LIABILITY, {"market": "DK"}).json()
    assert body["market"] == "DK" and body["currency"] == "DKK"
    assert body["as_of"] == today.isoformat() and body["point_value"] == "0.01"
    assert body["outstanding"] == {
        "available": 350,
        "pending": 800,
        "total": 1150,
        "value": "11.50",
    }
    accounts = PointsAccount.objects.filter(member__market=dk)
    assert sum(a.balance + a.pending for a in accounts) == 1150
    assert body["held"] == 50
    assert body["breakage_rate_12m"] == 0.3571

    months = body["months"]
    assert [m["month"] for m in months] == [
        _add_months(this_month, k).strftime("%Y-%m") for k in range(-11, 1)
    ]
    by_month = {m["month"]: m for m in months}
    zero = {
        "earned": 0,
        "bonus": 0,
        "adjusted": 0,
        "returned": 0,
        "redeemed": 0,
        "redeem_cancelled": 0,
        "expired": 0,
    }
    assert by_month[m3.strftime("%Y-%m")] == {
        "month": m3.strftime("%Y-%m"),
        "opening": 0,
        **zero,
        "adjusted": 250,
        "closing": 250,
    }
    assert by_month[m1.strftime("%Y-%m")] == {
        "month": m1.strftime("%Y-%m"),
        "opening": 250,
        **zero,
        "expired": -250,
        "closing": 0,
    }
    assert months[-1] == {
        "month": this_month.strftime("%Y-%m"),
        "opening": 0,
        "earned": 1000,
        "bonus": 300,
        "adjusted": 500,
        "returned": -200,
        "redeemed": -550,
        "redeem_cancelled": 100,
        "expired": 0,
        "closing": 1150,
    }
    # The roll-forward: each closing is its opening plus its movements and
    # the next opening; the last closing is the outstanding total.
    for month, following in zip(months, months[1:] + [None]):
        assert month["closing"] == month["opening"] + sum(month[k] for k in zero)
        if following:
            assert following["opening"] == month["closing"]
    assert months[-1]["closing"] == body["outstanding"]["total"]

    expiring = body["expiring"]
    assert len(expiring) == 12 and expiring[0]["month"] == this_month.strftime("%Y-%m")
    assert {e["month"]: e["points"] for e in expiring if e["points"]} == {
        next_month_end.strftime("%Y-%m"): 300
    }

    # A day past: the ledger as it stood then.
    past = _add_months(m3, 1) - timedelta(days=1)  # the last day of M-3
    then = api.get(LIABILITY, {"market": "DK", "as_of": past.isoformat()}).json()
    assert then["as_of"] == past.isoformat()
    assert then["months"][-1]["month"] == m3.strftime("%Y-%m")
    assert then["months"][-1]["closing"] == then["outstanding"]["total"] == 250
    assert then["breakage_rate_12m"] is None  # nothing redeemed nor expired by then


def test_a_future_as_of_is_refused(api):
    future = (timezone.now() + timedelta(days=3)).date().isoformat()
    assert_problem(api.get(LIABILITY, {"market": "SE", "as_of": future}), 400, "validation_error")
    assert_problem(
        api.get(LIABILITY, {"market": "SE", "as_of": "yesterday"}), 400, "validation_error"
    )


def test_the_report_as_the_selector_gives_it(api):
    se = Market.objects.get(code="SE")
    assert api.get(LIABILITY, {"market": "SE"}).json() == liability_report(market=se)
