"""The NPS report read from its rollups equals the report that ranks every
answer of the period (the query it replaced, kept here as the oracle), for
random answers (several members, out of order, same day, same moment),
erasures and periods, in every grouping; the rollups equal a recount from
the answers after concurrent writes and after the migration's backfill."""

from __future__ import annotations

import importlib
import itertools
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber, TruncMonth
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from club.models import Market
from insights.models import NpsDay, NpsResponse, NpsSuperseded
from insights.selectors import NPS_GROUPS, _midnight, nps_figures, nps_latest, nps_report
from insights.services import nps_response_record
from integrations.privacy import member_erase
from tests.helpers import SYSTEM, in_parallel, set_tier

TOUCHPOINTS = ("store", "online", "support", "app", "email")
STORES = (None, "SE-001", "SE-002")

pytestmark = pytest.mark.django_db


# --- the oracle: every answer of the period ranked per member ------------------------


def ranked_report(market: Market, date_from: date, date_to: date, group_by: str | None) -> dict:
    """The report as it was computed before the rollups: each member's
    latest answer of the period (per month: of the month) by a window."""
    zone = ZoneInfo(market.time_zone)
    answers = NpsResponse.objects.filter(
        market=market,
        occurred_at__gte=_midnight(market, date_from),
        occurred_at__lt=_midnight(market, date_to + timedelta(days=1)),
    ).annotate(month=TruncMonth("occurred_at", tzinfo=zone))
    counts = {
        "promoters": Count("id", filter=Q(score__gte=9)),
        "passives": Count("id", filter=Q(score__gte=7, score__lte=8)),
        "detractors": Count("id", filter=Q(score__lte=6)),
    }

    def latest(per_month: bool) -> Any:
        partition = [F("member_id"), F("month")] if per_month else [F("member_id")]
        ranked = answers.annotate(
            rank=Window(
                RowNumber(),
                partition_by=partition,
                order_by=[F("occurred_at").desc(), F("id").desc()],
            )
        ).filter(rank=1)
        return NpsResponse.objects.filter(id__in=ranked.values("id")).annotate(
            month=TruncMonth("occurred_at", tzinfo=zone)
        )

    def figures(row: dict) -> dict:
        return nps_figures(row["promoters"] or 0, row["passives"] or 0, row["detractors"] or 0)

    out = {
        "market": market.code,
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        **figures(latest(False).aggregate(**counts)),
    }
    if group_by is not None:
        key = {
            "touchpoint": "touchpoint",
            "store": "store__code",
            "tier": "member__tier__code",
            "month": "month",
        }[group_by]
        rows = (
            latest(group_by == "month")
            .values(key)
            .annotate(**counts)
            .order_by(F(key).asc(nulls_last=True))
        )
        out["groups"] = [
            {
                "key": row[key].astimezone(zone).strftime("%Y-%m")
                if group_by == "month"
                else row[key],
                **figures(row),
            }
            for row in rows
        ]
    return out


# --- the rollups recounted from the answers ---------------------------------------------


def _category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def recount() -> tuple[dict, dict, dict]:
    """(each answer's next time, NpsDay's cells, NpsSuperseded's cells) as
    the answers say, counted here from scratch."""
    zones = {m.pk: ZoneInfo(m.time_zone) for m in Market.objects.all()}
    answers = list(NpsResponse.objects.order_by("member_id", "occurred_at", "id"))
    nexts: dict[int, datetime | None] = {}
    days: Counter = Counter()
    superseded: Counter = Counter()
    for answer, after in itertools.zip_longest(answers, answers[1:]):
        next_at = after.occurred_at if after and after.member_id == answer.member_id else None
        nexts[answer.pk] = next_at
        zone = zones[answer.market_id]
        day = answer.occurred_at.astimezone(zone).date()
        month = day.replace(day=1)
        store = str(answer.store_id) if answer.store_id else ""
        for group_by, key in (("", ""), ("touchpoint", answer.touchpoint), ("store", store)):
            cell = (answer.market_id, group_by, key, _category(answer.score))
            days[(*cell, "day", day)] += 1
            days[(*cell, "month", month)] += 1
            if next_at is not None:
                then = next_at.astimezone(zone).date()
                then_month = then.replace(day=1)
                superseded[(*cell, "dd", day, then)] += 1
                superseded[(*cell, "dm", day, then_month)] += 1
                superseded[(*cell, "md", month, then)] += 1
                superseded[(*cell, "mm", month, then_month)] += 1
    return nexts, dict(days), dict(superseded)


def stored() -> tuple[dict, dict, dict]:
    """The same as the tables hold them (cells of 0 answers left out)."""
    nexts = dict(NpsResponse.objects.values_list("id", "next_occurred_at"))
    days = {
        (m, g, k, c, s, d): n
        for m, g, k, c, s, d, n in NpsDay.objects.exclude(answers=0).values_list(
            "market_id", "group_by", "group_key", "category", "span", "day", "answers"
        )
    }
    superseded = {
        (m, g, k, c, s, d, t): n
        for m, g, k, c, s, d, t, n in NpsSuperseded.objects.exclude(answers=0).values_list(
            "market_id", "group_by", "group_key", "category", "span", "day", "next_day", "answers"
        )
    }
    return nexts, days, superseded


def assert_rollups_recounted() -> None:
    want, got = recount(), stored()
    assert got[0] == want[0], "next_occurred_at"
    assert got[1] == want[1], "NpsDay"
    assert got[2] == want[2], "NpsSuperseded"


# --- random answers, erasures and periods ----------------------------------------------

# An answer: (member, hours back in steps of 7 (same days, and ties when
# two draw the same step), score, touchpoint, store); an erasure: (member,).
answers_st = st.tuples(
    st.integers(0, 3),
    st.integers(0, 280),
    st.integers(0, 10),
    st.sampled_from(TOUCHPOINTS),
    st.sampled_from(STORES),
)
steps_st = st.lists(
    st.one_of(answers_st, answers_st, answers_st, st.tuples(st.integers(0, 3))),
    min_size=1,
    max_size=14,
)
# Periods as days back from today (first, last), ordered in the test.
periods_st = st.lists(st.tuples(st.integers(0, 95), st.integers(0, 95)), min_size=1, max_size=3)


@given(steps=steps_st, periods=periods_st)
@hypothesis_settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_the_rolled_up_report_equals_the_ranked_one(
    make_member: Any, steps: list[tuple], periods: list[tuple[int, int]]
) -> None:
    se = Market.objects.get(code="SE")
    # Each example on its own: what it writes is rolled back.
    sid = transaction.savepoint()
    try:
        members = [make_member() for _ in range(4)]
        set_tier(members[1], "gold")
        # Whole hours, so two answers at the same step share their moment.
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        for step in steps:
            member = members[step[0]]
            if len(step) == 1:
                member_erase(member=member, actor=SYSTEM)
                member.refresh_from_db()
                continue
            if member.status == "erased":
                continue
            _, hours_back, score, touchpoint, store = step
            nps_response_record(
                actor=SYSTEM,
                member_ref={"member_number": member.member_number},
                score=score,
                touchpoint=touchpoint,
                store_code=store,
                occurred_at=now - timedelta(hours=7 * hours_back),
            )
        assert_rollups_recounted()
        for member in members:  # a member's latest answer, beside the report's
            latest = NpsResponse.objects.filter(member=member).order_by("occurred_at", "id").last()
            assert nps_latest(member=member) == (
                None
                if latest is None
                else {
                    "score": latest.score,
                    "category": NpsResponse.category_of(latest.score),
                    "answered_at": latest.occurred_at.isoformat(),
                }
            )
        today = timezone.localtime(now, ZoneInfo(se.time_zone)).date()
        for a, b in periods:
            first, last = today - timedelta(days=max(a, b)), today - timedelta(days=min(a, b))
            for group_by in (None, *NPS_GROUPS):
                got = nps_report(market=se, date_from=first, date_to=last, group_by=group_by)
                assert got == ranked_report(se, first, last, group_by), (first, last, group_by)
    finally:
        transaction.savepoint_rollback(sid)


def test_whole_months_and_their_ends_split_alike(make_member: Any) -> None:
    """Periods from a month's 1st to a month's last day, and one day on
    each side of them: the pieces the report reads (whole months, days)."""
    se = Market.objects.get(code="SE")
    zone = ZoneInfo(se.time_zone)
    member, other = make_member(), make_member()
    now = timezone.now()
    today = timezone.localtime(now, zone).date()
    # Answers around the 1st of this month and of the two before.
    month = today.replace(day=1)
    moments = []
    for back in (0, 1, 2):
        first = (month - timedelta(days=31 * back)).replace(day=1)
        for offset in (-1, 0, 1):
            moment = datetime.combine(first + timedelta(days=offset), datetime.min.time(), zone)
            moment += timedelta(hours=12)
            if now - timedelta(days=89) < moment < now:
                moments.append(moment)
    for i, moment in enumerate(sorted(moments, reverse=True)):  # out of order
        for who in (member, other) if i % 2 else (member,):
            nps_response_record(
                actor=SYSTEM,
                member_ref={"member_number": who.member_number},
                score=(3 * i) % 11,
                touchpoint=TOUCHPOINTS[i % 5],
                occurred_at=moment,
            )
    assert_rollups_recounted()
    firsts = sorted({(month - timedelta(days=31 * back)).replace(day=1) for back in (0, 1, 2)})
    ends = [*(f - timedelta(days=1) for f in firsts[1:]), today]
    for first, last in itertools.product(firsts, ends):
        if first > last:
            continue
        for lo, hi in [
            (first, last),
            (first + timedelta(days=1), last),
            (first, last - timedelta(1)),
        ]:
            if lo > hi:
                continue
            for group_by in (None, *NPS_GROUPS):
                got = nps_report(market=se, date_from=lo, date_to=hi, group_by=group_by)
                assert got == ranked_report(se, lo, hi, group_by), (lo, hi, group_by)


def test_the_migration_counts_answers_written_without_the_service(make_member: Any) -> None:
    """The bench's answers (and a club's history) are rows no service wrote:
    the migration's backfill, in SQL on PostgreSQL and row by row elsewhere,
    counts them as the service would have."""
    migration = importlib.import_module("insights.migrations.0006_nps_rollup")
    members = [make_member() for _ in range(3)]
    se = Market.objects.get(code="SE")
    now = timezone.now().replace(microsecond=0)
    for i in range(40):
        NpsResponse.objects.create(
            member=members[i % 3],
            market=se,
            touchpoint=TOUCHPOINTS[i % 5],
            store_id=None,
            score=(7 * i) % 11,
            # Out of order, some on one moment.
            occurred_at=now - timedelta(hours=(37 * i) % 500 // 5 * 5),
        )
    assert not NpsDay.objects.exists()

    def in_sql() -> None:
        with connection.schema_editor() as editor:
            migration.rollups_count(apps, editor)

    ways = [lambda: migration._count_in_python(apps)]
    if connection.vendor == "postgresql":  # SQLite's schema editor needs no transaction open
        ways.append(in_sql)
    for count in ways:
        NpsResponse.objects.update(next_occurred_at=None)
        NpsDay.objects.all().delete()
        NpsSuperseded.objects.all().delete()
        count()
        assert_rollups_recounted()
        assert NpsSuperseded.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_answers_at_once_leave_the_rollups_exact(api: Any, make_member: Any) -> None:
    """Real threads against Postgres: eight answers of one member at once
    (out of order, two on one moment), then answers of many members at
    once (the market's shared rows); then an erasure beside answers."""
    se = Market.objects.get(code="SE")
    one = make_member()
    now = timezone.now().replace(microsecond=0)
    backs = [0, 30, 5, 30, 70, 2, 50, 11]  # hours back: two at 30

    def post(member: Any, hours_back: int, i: int, client: Any) -> int:
        body = {
            "member": {"member_number": member.member_number},
            "score": (i * 4) % 11,
            "touchpoint": TOUCHPOINTS[i % 5],
            "occurred_at": (now - timedelta(hours=hours_back)).isoformat(),
        }
        if i % 3 == 0:
            body["store_code"] = "SE-001"
        return client.post("/api/v1/surveys/nps", body, format="json").status_code

    assert in_parallel(8, lambda i, c: post(one, backs[i], i, c), api.raw_key) == [201] * 8
    assert_rollups_recounted()

    many = [make_member() for _ in range(10)]
    results = in_parallel(10, lambda i, c: post(many[i], 24 * i + 1, i, c), api.raw_key)
    assert results == [201] * 10
    results = in_parallel(10, lambda i, c: post(many[9 - i], 3 * i, i, c), api.raw_key)
    assert results == [201] * 10
    assert_rollups_recounted()

    def erase_or_answer(i: int, client: Any) -> int:
        if i == 0:
            return client.post(
                f"/api/v1/members/{many[0].member_number}/erase", HTTP_IDEMPOTENCY_KEY="e-1"
            ).status_code
        return post(many[i % 3], 40 + i, i, client)

    statuses = in_parallel(6, erase_or_answer, api.raw_key)
    # many[0]'s answers come before or after the erasure: refused after.
    assert statuses[0] == 200 and set(statuses[1:]) <= {201, 422}
    assert not NpsResponse.objects.filter(member=many[0]).exists()
    assert_rollups_recounted()
    today = timezone.localtime(now, ZoneInfo(se.time_zone)).date()
    for first in (today - timedelta(days=10), today - timedelta(days=1), today):
        for group_by in (None, *NPS_GROUPS):
            got = nps_report(market=se, date_from=first, date_to=today, group_by=group_by)
            assert got == ranked_report(se, first, today, group_by)


def test_a_period_that_ends_before_it_begins_counts_nothing(make_member: Any) -> None:
    """The API refuses it; the dashboard's callers might not: no answer
    counts, across a month's end or within one, as the ranking said."""
    se = Market.objects.get(code="SE")
    member = make_member()
    now = timezone.now()
    days = []
    for back in (timedelta(minutes=1), timedelta(days=40)):
        nps_response_record(
            actor=SYSTEM,
            member_ref={"member_number": member.member_number},
            score=10,
            touchpoint="app",
            occurred_at=now - back,
        )
        days.append(timezone.localtime(now - back, ZoneInfo(se.time_zone)).date())
    # From an answer's day back to days before it: the pieces a period in
    # order would read hold that answer.
    for first, last in ((days[0], days[0] - timedelta(days=60)), (days[1], days[1] - timedelta(1))):
        for group_by in (None, *NPS_GROUPS):
            got = nps_report(market=se, date_from=first, date_to=last, group_by=group_by)
            assert got == ranked_report(se, first, last, group_by)
            assert got["responses"] == 0
