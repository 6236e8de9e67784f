"""The insight endpoints send their selectors' answers without a
serializer's pass: each answer is exactly its serializer's rendering
(types included), a request reads a few statements, the market's few
seconds' memory never widens what a client sees, and a member's one read
answers what nps_latest answers."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from django.db import connection
from django.utils import timezone

from club import selectors as club_selectors
from club.dates import today_for
from club.models import Market
from insights import rollups, selectors
from insights.apis import (
    LiabilityOut,
    MemberInsightsOut,
    ModelOut,
    NpsReportOut,
    RetentionOut,
    SegmentsOut,
)
from insights.models import FittedModel, MemberScore, NpsResponse
from insights.rollups import rollup_add
from insights.scoring import insights_refresh
from loyalty.models import PointsAccount
from loyalty.services import points_adjust
from tests.helpers import SYSTEM, assert_problem, buy, give_back

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

RETENTION = "/api/v1/insights/retention"
LIABILITY = "/api/v1/insights/liability"
SEGMENTS = "/api/v1/insights/segments"
MODEL = "/api/v1/insights/model"
NPS = "/api/v1/insights/nps"


def _typed(value: Any) -> Any:
    """A JSON value with each number's type beside it (1 == 1.0 in Python,
    not in a client that reads `1` as an integer)."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    if isinstance(value, bool | int | float):
        return (type(value).__name__, value)
    return value


def _rendered(serializer: Any, report: dict) -> Any:
    """The report as its serializer renders it, through JSON."""
    return _typed(orjson.loads(orjson.dumps(serializer(report).data)))


def _statements(api: Any, path: str, params: dict | None = None) -> tuple[Any, list[str]]:
    """The answer and the statements the request ran (savepoints left out:
    in production, the transaction's BEGIN and COMMIT)."""
    seen: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if not sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT")):
            seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = api.get(path, params)
    assert response.status_code == 200, response.content[:500]
    return response, seen


@pytest.fixture
def scored(make_member, monkeypatch):
    """SE members with purchases, points and NPS answers, scored and
    rolled up; a member's score and DK's models written by hand with
    integral values (which JSON would render as integers)."""
    buyer = make_member(consents={"profiling": True})
    other = make_member(consents={"profiling": True})
    now = timezone.now()
    for days in (80, 45, 30):
        buy(buyer, "120.00", occurred_at=now - timedelta(days=days))
    give_back(buy(other, "80.00", occurred_at=now - timedelta(days=40)), "80.00")
    buy(other, "60.00", occurred_at=now - timedelta(days=10))
    points_adjust(actor=SYSTEM, member=buyer, points=300, reason="goodwill")
    NpsResponse.objects.create(
        member=buyer,
        market=buyer.market,
        touchpoint="store",
        score=9,
        occurred_at=now - timedelta(days=3),
    )
    insights_refresh(as_of=now, market="SE")
    MemberScore.objects.update_or_create(
        member=other,
        defaults={
            "market": other.market,
            "as_of": today_for(other.market),
            "recency_days": 10,
            "frequency_12m": 1,
            "monetary_12m": Decimal("60"),
            "r": 5,
            "f": 1,
            "m": 1,
            "segment": "new",
            "action": "develop",
            "p_alive": 1.0,
            "expected_purchases_90d": 2.0,
            "expected_spend": Decimal("412.5"),
            "clv_12m": Decimal("2410"),
        },
    )
    dk = Market.objects.get(code="DK")
    FittedModel.objects.create(
        market=dk,
        as_of=today_for(dk),
        members=4,
        purchase_model={
            "name": "bg_nbd",
            "r": 1,
            "alpha": 2.5,
            "a": 1,
            "b": 3,
            "log_likelihood": -9,
        },
        spend_model={
            "name": "gamma_gamma",
            "p": 6,
            "q": 3.5,
            "gamma": 15,
            "members": 4,
            "log_likelihood": -4.5,
        },
    )
    # No margin: the rows are all in the test's transaction, stamped before
    # the rollup's sample.
    monkeypatch.setattr(rollups, "MARGIN", timedelta(0))
    rollup_add()
    return buyer, other


def test_each_answer_is_its_serializers_rendering(api, scored, monkeypatch):
    buyer, other = scored
    se, dk = Market.objects.get(code="SE"), Market.objects.get(code="DK")
    this_month = today_for(se).replace(day=1)
    first = selectors._add_months(this_month, -11)
    today = today_for(se)
    year_ago = today - timedelta(days=365)
    cases = (
        [
            (
                RETENTION,
                {"market": "SE", "from": first.strftime("%Y-%m")},
                RetentionOut,
                lambda: selectors.retention_report(
                    market=se, month_from=first, month_to=this_month
                ),
            ),
            (
                LIABILITY,
                {"market": "SE"},
                LiabilityOut,
                lambda: selectors.liability_report(market=se),
            ),
            (SEGMENTS, {"market": "SE"}, SegmentsOut, lambda: selectors.segments_report(market=se)),
            (MODEL, {"market": "DK"}, ModelOut, lambda: selectors.model_report(market=dk)),
        ]
        + [
            (
                NPS,
                {"market": "SE", "from": year_ago.isoformat(), "to": today.isoformat(), **grouped},
                NpsReportOut,
                lambda grouped=grouped: selectors.nps_report(
                    market=se, date_from=year_ago, date_to=today, group_by=grouped.get("group_by")
                ),
            )
            for grouped in ({}, *({"group_by": key} for key in selectors.NPS_GROUPS))
        ]
        + [
            (
                f"/api/v1/members/{member.member_number}/insights",
                None,
                MemberInsightsOut,
                lambda member=member: selectors.member_insights(member=member),
            )
            for member in (buyer, other)
        ]
    )
    for path, params, serializer, report in cases:
        body = api.get(path, params).json()
        assert _typed(body) == _rendered(serializer, report()), path
    model = api.get(MODEL, {"market": "DK"}).json()
    assert _typed(model["purchase_model"]["r"]) == ("float", 1.0)
    assert _typed(model["spend_model"]["members"]) == ("int", 4)
    answer = api.get(f"/api/v1/members/{other.member_number}/insights").json()
    assert answer["value"] == {"expected_spend": "412.50", "clv_12m": "2410.00", "currency": "SEK"}
    assert _typed(answer["churn"]) == {
        "p_alive": ("float", 1.0),
        "expected_purchases_90d": ("float", 2.0),
    }


def test_a_request_reads_a_few_statements(api, scored, monkeypatch):
    """With the key, the market and the rollup's marks known to the process:
    segments and the model one read, a member two (the member, then score
    and NPS answer), the liability one (the report with the marks' version
    beside it), the retention one without news since the marks and four
    with news (the report's settings, then cohort_changes' two)."""
    buyer, _ = scored
    se = Market.objects.get(code="SE")
    api.get(SEGMENTS, {"market": "SE"})  # the key and the market, remembered
    api.get(LIABILITY, {"market": "SE"})  # and the marks
    assert len(_statements(api, SEGMENTS, {"market": "SE"})[1]) == 1
    assert len(_statements(api, MODEL, {"market": "SE"})[1]) == 1
    path = f"/api/v1/members/{buyer.member_number}/insights"
    assert len(_statements(api, path)[1]) == 2
    assert len(_statements(api, LIABILITY, {"market": "SE"})[1]) == 1
    past = {"market": "SE", "as_of": (today_for(se) - timedelta(days=40)).isoformat()}
    # The rolled-up rows of a day not asked before, the rest, the lots rebuilt.
    assert len(_statements(api, LIABILITY, past)[1]) == 3
    assert len(_statements(api, LIABILITY, past)[1]) == 2

    assert len(_statements(api, RETENTION, {"market": "SE"})[1]) == 1
    buy(buyer, "70.00", occurred_at=timezone.now())  # news since the marks
    assert len(_statements(api, RETENTION, {"market": "SE"})[1]) == 4


def test_marks_a_rollup_moved_are_read_again(api, scored, monkeypatch):
    """The marks a process remembers are checked by every report against
    the marks beside its sums: after a rollup moved them, the report reads
    the marks, the rolled-up rows and what lies above them again (four
    statements), answers what the ledger says, and the next report reads
    once."""
    monkeypatch.setattr(rollups, "MARGIN", timedelta(0))
    buyer, _ = scored
    answer = orjson.loads(api.get(LIABILITY, {"market": "SE"}).content)  # marks remembered
    before = selectors._last_marks
    points_adjust(actor=SYSTEM, member=buyer, points=37, reason="goodwill")
    rollup_add()
    response, seen = _statements(api, LIABILITY, {"market": "SE"})
    assert len(seen) == 4
    assert selectors._last_marks != before
    again = orjson.loads(response.content)
    assert again["outstanding"]["total"] == answer["outstanding"]["total"] + 37
    assert again["months"][-1]["adjusted"] == answer["months"][-1]["adjusted"] + 37
    selectors._last_marks = None  # as a new process would read it
    assert orjson.loads(api.get(LIABILITY, {"market": "SE"}).content) == again
    assert len(_statements(api, LIABILITY, {"market": "SE"})[1]) == 1


def test_retention_with_and_without_news_equals_a_recount(make_member, monkeypatch):
    """After the rollup, the report without news (the live part skipped)
    and with each kind of news (a purchase, a return, a new member) equals
    the counts straight from the members and purchases."""
    monkeypatch.setattr(rollups, "MARGIN", timedelta(0))
    se = Market.objects.get(code="SE")
    current = today_for(se).replace(day=1)
    first = selectors._add_months(current, -2)

    def straight() -> dict:
        with monkeypatch.context() as patched:
            patched.setattr(
                selectors,
                "_cohorts_rolled",
                lambda market, start, end: selectors._cohorts_orm(market, start, end, current),
            )
            return selectors.retention_report(market=se, month_from=first, month_to=current)

    def report() -> dict:
        return selectors.retention_report(market=se, month_from=first, month_to=current)

    a, b = make_member(), make_member()
    now = timezone.now()
    bought = buy(a, "40.00", occurred_at=now - timedelta(minutes=5))
    buy(b, "50.00", occurred_at=now - timedelta(minutes=5))
    rollup_add()
    live: list[int] = []
    counted = selectors.cohort_changes
    monkeypatch.setattr(
        selectors, "cohort_changes", lambda **kwargs: live.append(1) or counted(**kwargs)
    )
    quiet = straight()
    assert sum(c["members"] for c in quiet["cohorts"]) >= 2
    assert report() == quiet
    assert live == []  # no news: the live part skipped

    give_back(bought, "40.00")  # a return: a's purchase no longer counts
    assert report() == straight() != quiet
    assert live == [1]
    c = make_member()  # a member above the mark
    assert report() == straight()
    buy(c, "30.00", occurred_at=timezone.now())  # a purchase
    assert report() == straight()
    assert len(live) == 3
    rollup_add()  # the news rolled up: quiet again
    assert report() == straight()
    assert len(live) == 3


def test_the_liability_with_rows_above_and_below_the_marks_equals_the_orm(make_member):
    """The one statement's figures equal the ORM's part by part (the SQLite
    way), before any rollup, after it, and with rows above its marks; and
    the total equals the accounts."""
    dk = Market.objects.get(code="DK")
    x, y = make_member(market="DK"), make_member(market="DK")
    points_adjust(actor=SYSTEM, member=x, points=500, reason="goodwill")
    buy(y, "300.00", store="DK-001", currency="DKK")
    today = today_for(dk)

    def both(as_of: date) -> tuple[Any, Any]:
        this_month = as_of.replace(day=1)
        span = selectors._Span(
            today=today,
            as_of=as_of,
            end=selectors._midnight(dk, as_of + timedelta(days=1)),
            first=selectors._add_months(this_month, -11),
            first_at=selectors._midnight(dk, selectors._add_months(this_month, -11)),
            this_month=this_month,
            horizon=selectors._add_months(today, 12),
        )
        return (
            selectors._with_marks(lambda marks: selectors._liability_sql(dk, span, marks)),
            selectors._with_marks(lambda marks: selectors._liability_orm(dk, span, marks)),
        )

    for step in ("none rolled up", "rolled up", "rows above the marks"):
        if step == "rolled up":
            rollup_add()
        if step == "rows above the marks":
            points_adjust(actor=SYSTEM, member=y, points=-40, reason="correction")
            buy(x, "200.00", store="DK-001", currency="DKK")
        for as_of in (today, today - timedelta(days=35)):
            by_sql, by_orm = both(as_of)
            assert by_sql == by_orm, (step, as_of)
        report = selectors.liability_report(market=dk)
        accounts = sum(
            a.balance + a.pending for a in PointsAccount.objects.filter(member__market=dk)
        )
        assert report["outstanding"]["total"] == accounts, step
        assert report["months"][-1]["closing"] == accounts


def test_the_markets_memory_never_widens_what_a_client_sees(make_api, monkeypatch):
    everyone = make_api(scopes=["insights:read"])
    norway = make_api(scopes=["insights:read"], markets=["NO"])
    assert everyone.get(SEGMENTS, {"market": "SE"}).status_code == 200  # SE remembered
    assert_problem(norway.get(SEGMENTS, {"market": "SE"}), 404, "not_found")
    assert norway.get(SEGMENTS).json()["market"] == "NO"  # its only market
    assert_problem(everyone.get(SEGMENTS), 400, "validation_error")
    assert_problem(everyone.get(SEGMENTS, {"market": "XX"}), 404, "not_found")
    # A change shows once the memory has lapsed.
    Market.objects.filter(code="SE").update(point_value=Decimal("0.02"))
    assert everyone.get(LIABILITY, {"market": "SE"}).json()["point_value"] == "0.01"
    monkeypatch.setattr(club_selectors._markets, "seconds", 0.0)
    assert everyone.get(LIABILITY, {"market": "SE"}).json()["point_value"] == "0.02"


def test_a_members_one_read_answers_as_nps_latest(make_member):
    """The latest answer by time, then by id; none without answers; shown
    without the profiling consent too (the scores are not)."""
    profiled = make_member(consents={"profiling": True})
    private = make_member()
    silent = make_member(consents={"profiling": True})
    at = timezone.now() - timedelta(days=2)
    for member in (profiled, private):
        for score, when in ((3, at - timedelta(days=1)), (10, at), (7, at)):
            NpsResponse.objects.create(
                member=member, market=member.market, touchpoint="app", score=score, occurred_at=when
            )
    for member in (profiled, private, silent):
        assert selectors.member_insights(member=member)["nps"] == selectors.nps_latest(
            member=member
        )
    assert selectors.member_insights(member=profiled)["nps"]["score"] == 7  # same time: later id
    assert selectors.member_insights(member=private)["profiling"] is False
    assert selectors.member_insights(member=silent)["nps"] is None
