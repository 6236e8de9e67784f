"""`insights_rollup`: the liability report from rolled-up sums plus what
came after them equals the report straight from the ledger, for a member
set with every kind of entry, before and after new entries land."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from club.dates import today_for
from club.models import Market
from insights import rollups, selectors
from insights.models import CohortMonth, CohortSize, LedgerDay, LedgerMonth, LotDay, Rollup
from insights.rollups import rollup_add
from insights.selectors import _add_months, _midnight, liability_report, retention_report
from loyalty.lifecycle import points_expire
from loyalty.models import LedgerEntry, Lot, PointsAccount
from loyalty.services import points_adjust, points_bonus, points_redeem, redemption_cancel
from tests.helpers import SYSTEM, assert_ledger_consistent, buy, enrol_at, give_back
from tests.insights.test_reports import _backdate, _dk_buy, _dk_return, _on

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _every_kind(x, y, *, expire: bool = True) -> None:
    """Y: +250 adjusted, expired when `expire`. X: earned (pending), part
    returned, adjusted, a bonus, redeemed, a redemption cancelled, a hold."""
    points_adjust(actor=SYSTEM, member=y, points=250, reason="goodwill")
    if expire:
        Lot.objects.filter(member=y, remaining__gt=0).update(
            expires_on=timezone.now().date() - timedelta(days=2)
        )
        points_expire(as_of=timezone.now())
    purchase = _dk_buy(x, "1000.00")
    _dk_return(purchase, "200.00")
    points_adjust(actor=SYSTEM, member=x, points=500, reason="goodwill")
    x.refresh_from_db()
    bonus = points_bonus(member=x, points=300, reason="gift", reference=f"test:{timezone.now()}")
    ref = {"member_number": x.member_number}
    points_redeem(actor=SYSTEM, member_ref=ref, points=400, store_code="DK-001")
    cancelled = points_redeem(actor=SYSTEM, member_ref=ref, points=100, store_code="DK-001")
    redemption_cancel(actor=SYSTEM, redemption_id=cancelled["redemption_id"])
    points_redeem(actor=SYSTEM, member_ref=ref, points=50, store_code="DK-001", capture=False)
    # The bonus's lot (untouched: the redemptions took from earlier lots)
    # expires within the report's twelve months. A new lot: above any mark,
    # as a lot's days never change once it is rolled up.
    month = timezone.now().date().replace(day=1)
    Lot.objects.filter(entry=bonus).update(expires_on=_add_months(month, 2) - timedelta(days=1))


def _straight(market: Market, **kwargs) -> dict:
    """The report with nothing rolled up: every row read live."""
    sid = connection.savepoint()
    Rollup.objects.all().delete()
    for table in (LedgerDay, LedgerMonth, LotDay):
        table.objects.all().delete()
    try:
        return liability_report(market=market, **kwargs)
    finally:
        connection.savepoint_rollback(sid)


def _accounts(market: Market) -> tuple[int, int]:
    accounts = PointsAccount.objects.filter(member__market=market)
    return (
        sum(a.balance + a.pending for a in accounts),
        sum(a.pending for a in accounts),
    )


def test_the_rolled_up_liability_equals_the_ledger_before_and_after_new_entries(make_member):
    dk = Market.objects.get(code="DK")
    today = today_for(dk)
    x, y = make_member(market="DK"), make_member(market="DK")
    _every_kind(x, y)
    # Months back: the first entries move into earlier months (before the
    # rollup: it adds each entry up once, by the day it was booked).
    first = LedgerEntry.objects.filter(member__market=dk).order_by("id")
    for months_back, entry in zip((14, 3, 1), first[:3], strict=True):
        _backdate(entry, _midnight(dk, _add_months(today, -months_back)) + timedelta(hours=12))
    assert_ledger_consistent()
    straight = _straight(dk)
    total, pending = _accounts(dk)
    assert (straight["outstanding"]["total"], straight["outstanding"]["pending"]) == (
        total,
        pending,
    )
    assert straight["outstanding"]["pending"] > 0 and straight["held"] == 50
    assert any(m["expired"] for m in straight["months"])
    assert sum(e["points"] for e in straight["expiring"]) > 0

    added = rollup_add()
    marks = Rollup.objects.get()
    assert added == LedgerEntry.objects.count() and marks.entry_id > 0
    assert LedgerDay.objects.filter(market=dk).exists()
    assert LedgerMonth.objects.filter(market=dk).count() >= 4  # M-14, M-3, M-1, M
    assert LotDay.objects.filter(market=dk).exists()
    assert liability_report(market=dk) == straight

    # New entries of every kind land after the rollup: rolled-up sums plus
    # the rows above the marks, read live.
    z = make_member(market="DK")
    _every_kind(x, z)
    # One of the new pending lots is due today, and the ageing job has not run.
    Lot.objects.filter(member=x, matured=False, entry_id__gt=marks.entry_id).update(
        available_on=today
    )
    assert_ledger_consistent()
    rolled = liability_report(market=dk)
    assert rolled == _straight(dk)
    assert rolled != straight
    total, pending = _accounts(dk)
    assert (rolled["outstanding"]["total"], rolled["outstanding"]["pending"]) == (total, pending)
    assert rolled["months"][-1]["closing"] == rolled["outstanding"]["total"]
    past = today - timedelta(days=40)
    assert liability_report(market=dk, as_of=past) == _straight(dk, as_of=past)

    # A second run adds only what came since; the answer is unchanged.
    assert rollup_add() == LedgerEntry.objects.filter(id__gt=marks.entry_id).count() > 0
    assert Rollup.objects.get().entry_id > marks.entry_id
    assert liability_report(market=dk) == rolled
    assert rollup_add() == 0
    assert liability_report(market=dk) == rolled


def test_the_rolled_up_rows_a_process_kept_stand_for_their_market_day_and_marks(make_member):
    """A process keeps the rolled-up rows it read per market, day and
    marks: the reports read from what it kept equal the ledger's, each
    market's its own, and once a rollup moved the marks they are read
    again."""
    dk, se = Market.objects.get(code="DK"), Market.objects.get(code="SE")
    x, y = make_member(market="DK"), make_member(market="DK")
    _every_kind(x, y)
    s = make_member(market="SE")
    points_adjust(actor=SYSTEM, member=s, points=120, reason="goodwill")
    rollup_add()
    past = today_for(dk) - timedelta(days=40)
    selectors._liabilities_rolled.clear()
    for _ in range(2):  # read, then from what the process kept
        assert liability_report(market=dk) == _straight(dk)
        assert liability_report(market=se) == _straight(se)
        assert liability_report(market=dk, as_of=past) == _straight(dk, as_of=past)
    assert {key[:2] for key in selectors._liabilities_rolled.kept()} >= {
        (dk.pk, today_for(dk)),
        (se.pk, today_for(se)),
        (dk.pk, past),
    }
    before = liability_report(market=se)["outstanding"]["total"]
    points_adjust(actor=SYSTEM, member=s, points=30, reason="goodwill")
    rollup_add()
    after = liability_report(market=se)
    assert after == _straight(se)
    assert after["outstanding"]["total"] == before + 30 == _accounts(se)[0]


def test_the_marks_wait_for_a_transaction_older_than_the_sample(make_member):
    """An id drawn by a transaction still open may commit below ids already
    visible: while one older than the sample is open, the marks stay."""
    dk = Market.objects.get(code="DK")
    x = make_member(market="DK")
    points_adjust(actor=SYSTEM, member=x, points=70, reason="goodwill")
    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"],
    )
    try:
        other.execute("SELECT 1")  # a transaction open from now on
        assert rollup_add() == 0
        assert Rollup.objects.get().entry_id == 0
        assert not LedgerDay.objects.exists()
        assert liability_report(market=dk)["outstanding"]["total"] == 70
        other.rollback()  # over: the marks move
        assert rollup_add() == LedgerEntry.objects.count()
    finally:
        other.close()
    assert rollup_add() == 0
    assert Rollup.objects.get().entry_id >= LedgerEntry.objects.order_by("-id").first().id
    assert liability_report(market=dk)["outstanding"]["total"] == 70


def test_the_command_rolls_up(make_member, capsys):
    x = make_member(market="DK")
    points_adjust(actor=SYSTEM, member=x, points=20, reason="goodwill")
    call_command("insights_rollup")
    assert "insights_rollup:" in capsys.readouterr().out
    assert LedgerDay.objects.get(market__code="DK", kind="adjust").points == 20


def _straight_retention(monkeypatch, market: Market, month_from) -> dict:
    """The retention report counted straight from the members and purchases
    (the ORM's counts, as on SQLite), whatever is rolled up."""
    current = today_for(market).replace(day=1)
    with monkeypatch.context() as patched:
        patched.setattr(
            selectors,
            "_cohorts_rolled",
            lambda market, start, end: selectors._cohorts_orm(market, start, end, current),
        )
        return retention_report(market=market, month_from=month_from, month_to=current)


def test_the_rolled_up_retention_equals_the_purchases_before_and_after_news(
    make_member, monkeypatch
):
    """Cohorts M-2 (a, b, c, d) and M-1 (e), as in the hand-counted test;
    after the rollup: a new member f of cohort M-2 buys in M-1, a's
    purchase of M-1 is returned whole, c buys in M-1, e buys again and b
    returns part of a purchase."""
    # No margin: this test's rows are all in its own transaction, stamped
    # before the rollup's sample.
    monkeypatch.setattr(rollups, "MARGIN", timedelta(0))
    se = Market.objects.get(code="SE")
    now = timezone.now()
    this_month = today_for(se).replace(day=1)
    m2, m1 = _add_months(this_month, -2), _add_months(this_month, -1)
    a, b, c, d, e = (make_member() for _ in range(5))
    for member in (a, b, c, d):
        enrol_at(member, _on(m2, 3))
    enrol_at(e, _on(m1, 2))
    buy(a, occurred_at=_on(m2, 20))
    a_m1 = buy(a, "50.00", occurred_at=_on(m1, 10))
    give_back(buy(b, "80.00", occurred_at=_on(m1, 10)), "80.00")
    b_now = buy(b, "90.00", occurred_at=now - timedelta(minutes=1))
    give_back(buy(c, "100.00", occurred_at=_on(m2, 21)), "40.00")
    buy(e, occurred_at=now - timedelta(minutes=1))
    straight = _straight_retention(monkeypatch, se, m2)
    by_cohort = {row["cohort"]: row for row in straight["cohorts"]}
    assert by_cohort[m2.strftime("%Y-%m")]["active"] == [2, 1, 1]

    rollup_add()
    assert CohortSize.objects.filter(market=se, cohort=m2).get().members == 4
    assert CohortMonth.objects.filter(market=se, cohort=m2, month=m2).get().active == 2
    assert Rollup.objects.get().purchases_before is not None
    assert retention_report(market=se, month_from=m2, month_to=this_month) == straight

    f = enrol_at(make_member(), _on(m2, 4))
    buy(f, occurred_at=_on(m1, 12))
    give_back(a_m1, "50.00")
    buy(c, occurred_at=_on(m1, 14))
    buy(e, occurred_at=now - timedelta(minutes=2))
    give_back(b_now, "30.00")
    after = _straight_retention(monkeypatch, se, m2)
    by_cohort = {row["cohort"]: row for row in after["cohorts"]}
    assert by_cohort[m2.strftime("%Y-%m")]["members"] == 5
    assert by_cohort[m2.strftime("%Y-%m")]["active"] == [2, 2, 1]  # a, c; c, f; b
    assert retention_report(market=se, month_from=m2, month_to=this_month) == after
    assert retention_report(market=se, month_from=m1, month_to=m1) == {
        "market": "SE",
        "cohorts": [row for row in after["cohorts"] if row["cohort"] == m1.strftime("%Y-%m")],
    }

    # A second run counts the news in; the answer is unchanged.
    rollup_add()
    assert CohortSize.objects.filter(market=se, cohort=m2).get().members == 5
    assert CohortMonth.objects.filter(market=se, cohort=m2, month=m1).get().active == 2
    assert retention_report(market=se, month_from=m2, month_to=this_month) == after


def test_a_rollup_committing_mid_report_makes_it_read_again(monkeypatch):
    """Sums read after a rollup committed, with the marks from before it,
    would count its rows twice: the statement that reads the sums reads
    the marks' version beside them, and the report reads again when that
    is not the version of the marks it used."""
    before = selectors._Marks(entry_id=10, version="10,0,0,")
    after = selectors._Marks(entry_id=20, version="20,0,0,")
    seen = iter([before, after])
    monkeypatch.setattr(selectors, "_marks", lambda: next(seen))
    monkeypatch.setattr(selectors, "_last_marks", None)  # none read yet in this process
    reads = []

    def read(marks):
        reads.append(marks.entry_id)
        return len(reads), after.version  # the sums as of the new marks

    assert selectors._with_marks(read) == 2
    assert reads == [10, 20]


def test_the_marks_version_is_the_one_the_sums_are_read_with(make_member):
    """The version the marks' read gives and the one a report's statement
    reads beside its sums are written alike (else every report would read
    again and again), and a rollup changes it."""
    dk = Market.objects.get(code="DK")
    points_adjust(actor=SYSTEM, member=make_member(market="DK"), points=10, reason="goodwill")
    assert selectors._marks().version == ""
    rollup_add()
    marks = selectors._marks()
    assert marks.entry_id > 0 and marks.version.startswith(f"{marks.entry_id},")
    assert liability_report(market=dk)["outstanding"]["total"] >= 10  # read once
    today = today_for(dk)
    span = selectors._Span(
        today=today,
        as_of=today,
        end=_midnight(dk, today + timedelta(days=1)),
        first=_add_months(today.replace(day=1), -11),
        first_at=_midnight(dk, _add_months(today.replace(day=1), -11)),
        this_month=today.replace(day=1),
        horizon=_add_months(today, 12),
    )
    assert selectors._liability_sql(dk, span, marks)[1] == marks.version
    assert selectors._liability_orm(dk, span, marks)[1] == marks.version


def test_the_marks_stay_while_a_session_is_hidden_from_the_role(make_member, monkeypatch):
    """A session of another role (without pg_read_all_stats) shows no
    transaction: it might be an old one, so the marks do not move."""
    x = make_member(market="DK")
    points_adjust(actor=SYSTEM, member=x, points=30, reason="goodwill")
    monkeypatch.setattr(
        rollups,
        "_OLDEST_SQL",
        "SELECT NULL::timestamptz, TRUE",
    )
    assert rollup_add() == 0
    marks = Rollup.objects.get()
    assert (marks.entry_id, marks.member_id, marks.purchases_before) == (0, 0, None)
    assert not CohortSize.objects.exists()
    assert liability_report(market=Market.objects.get(code="DK"))["outstanding"]["total"] == 30


@pytest.mark.parametrize(
    ("table", "index"),
    [
        ("loyalty_purchase", "insights_purchase_created_at"),
        ("loyalty_return", "insights_return_created_at"),
    ],
)
def test_the_news_since_a_moment_are_found_by_a_btree_on_created_at(table, index):
    """The purchases and returns created since the rollup's moment (the
    reports' and the rollup's news) are found by a B-tree on created_at
    (insights 0008): one probe when there are none, where a BRIN reads
    every range's summary and rechecks the rows of the table's last pages."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [index])
        (definition,) = cursor.fetchone()
        # The test's tables are tiny: without this the planner reads them whole.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            f"EXPLAIN SELECT count(*) FROM {table} WHERE created_at >= %s",
            [timezone.now() - timedelta(minutes=15)],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert definition.endswith(f"ON public.{table} USING btree (created_at)")
    assert index in plan
