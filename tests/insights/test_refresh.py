"""`insights_refresh` and the reads of what it stored: the CDNOW sample
brought in with the import commands gives the published estimates; members
built to land in each of the eight segments; members without the profiling
consent are left out."""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from club.models import Market
from core.jobs import jobs
from insights import scoring
from insights.models import FittedModel, MemberScore
from insights.scoring import _TEMP_TABLES_SQL, _columns, _copy_in, insights_refresh
from insights.selectors import SEGMENTS
from members.models import Member
from tests.helpers import assert_problem, buy, give_back
from tests.insights.cdnow import CDNOW_CALIBRATION_END, cdnow_write_imports

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

WITHIN = 0.005  # 0.5 %


def _with_profiling(path) -> None:
    """The CDNOW customers consent to profiling (the import's column)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0], "profiling"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "profiling": "true"})


def test_cdnow_gives_the_published_estimates(tmp_path, make_api, capsys):
    members_csv, purchases_csv = tmp_path / "members.csv", tmp_path / "purchases.csv"
    written = cdnow_write_imports(
        members_csv, purchases_csv, market="SE", store_code="SE-WEB", currency="SEK"
    )
    assert written == (2357, 6919)
    _with_profiling(members_csv)
    call_command("import_members", str(members_csv))
    call_command("import_purchases", str(purchases_csv))
    call_command("insights_refresh", "--as-of", CDNOW_CALIBRATION_END.isoformat(), "--market", "SE")
    assert "insights_refresh:" in capsys.readouterr().out

    api = make_api(scopes=["insights:read"])
    model = api.get("/api/v1/insights/model", {"market": "SE"}).json()
    assert model["market"] == "SE" and model["as_of"] == "1997-09-30"
    assert model["time_unit"] == "week" and model["members"] == 2357
    bg = model["purchase_model"]
    assert bg["name"] == "bg_nbd"
    assert bg["r"] == pytest.approx(0.243, rel=WITHIN)
    assert bg["alpha"] == pytest.approx(4.414, rel=WITHIN)
    assert bg["a"] == pytest.approx(0.793, rel=WITHIN)
    assert bg["b"] == pytest.approx(2.426, rel=WITHIN)
    assert bg["log_likelihood"] == pytest.approx(-9582.4, rel=WITHIN)
    gg = model["spend_model"]
    assert gg["name"] == "gamma_gamma" and gg["members"] == 946
    assert gg["p"] == pytest.approx(6.25, rel=WITHIN)
    assert gg["q"] == pytest.approx(3.74, rel=WITHIN)
    assert gg["gamma"] == pytest.approx(15.44, rel=WITHIN)

    # The first customer: x 2, t_x 30.43, T 38.86 weeks; p_alive 0.7266.
    first = Member.objects.get(external_id="CDNOW-00004")
    score = MemberScore.objects.get(member=first)
    assert (score.x, round(score.t_x, 2), round(score.t_cal, 2)) == (2, 30.43, 38.86)
    body = api.get(f"/api/v1/members/{first.member_number}/insights").json()
    assert body["profiling"] is True and body["as_of"] == "1997-09-30"
    assert body["churn"]["p_alive"] == pytest.approx(0.7266, abs=0.001)
    # Its expected spend: the Gamma-Gamma mean of (29.73 + 14.96) / 2 shrunk
    # to the population's; its value: 52 weeks of expected transactions.
    mean = (29.73 + 14.96) / 2
    expected_spend = gg["p"] * (gg["gamma"] + 2 * mean) / (gg["p"] * 2 + gg["q"] - 1)
    assert float(body["value"]["expected_spend"]) == pytest.approx(expected_spend, abs=0.01)
    assert body["value"]["currency"] == "SEK"
    assert float(body["value"]["clv_12m"]) == pytest.approx(
        score.expected_purchases_52w * float(score.expected_spend), abs=0.01
    )
    assert 0 < body["churn"]["expected_purchases_90d"] < score.expected_purchases_52w
    # As of 1997-09-30 the last purchase is 59 days old; 12 months: 3 receipts.
    assert body["rfm"]["recency_days"] == 59 and body["rfm"]["frequency_12m"] == 3

    # A second run of the same day changes nothing.
    before = list(MemberScore.objects.order_by("member_id").values_list("member_id", "p_alive"))
    insights_refresh(as_of=CDNOW_CALIBRATION_END, market="SE")
    after = list(MemberScore.objects.order_by("member_id").values_list("member_id", "p_alive"))
    assert before == after
    assert FittedModel.objects.filter(market__code="SE").count() == 1


# The wanted (R, F, M) scores of ten members: with ten members each score
# is two ranks (1 + floor(5 x (rank - 1) / 10)).
SEGMENT_PLAN = [
    ("champions", 5, 5, 5),
    ("loyal", 3, 3, 3),
    ("cant_lose", 1, 5, 4),  # FM (5 + 4) / 2 rounds up to 5
    ("potential", 4, 2, 2),
    ("new", 5, 1, 1),
    ("at_risk", 2, 3, 3),
    ("hibernating", 2, 1, 2),  # FM 1.5 rounds up to 2
    ("lost", 1, 2, 1),
    ("champions", 4, 4, 5),
    ("loyal", 3, 4, 4),
]


def _ranks(scores: list[int]) -> list[int]:
    """A rank 1..10 per member with that score (score s: ranks 2s-1, 2s)."""
    taken: dict[int, int] = {}
    ranks = []
    for score in scores:
        ranks.append(2 * score - 1 + taken.get(score, 0))
        taken[score] = taken.get(score, 0) + 1
    return ranks


def test_members_land_in_each_of_the_eight_segments(make_member, make_api):
    members = [make_member(market="FI", consents={"profiling": True}) for _ in SEGMENT_PLAN]
    r_ranks = _ranks([plan[1] for plan in SEGMENT_PLAN])
    f_ranks = _ranks([plan[2] for plan in SEGMENT_PLAN])
    m_ranks = _ranks([plan[3] for plan in SEGMENT_PLAN])
    now = timezone.now()
    for member, r_rank, f_rank, m_rank in zip(members, r_ranks, f_ranks, m_ranks):
        # Rank 10 bought most recently; f_rank receipts; 1,000 x m_rank in all.
        day = now - timedelta(days=80 - 7 * r_rank)
        amount = (Decimal(1000 * m_rank) / f_rank).quantize(Decimal("0.01"))
        for n in range(f_rank):
            buy(
                member,
                str(amount),
                store="FI-001",
                occurred_at=day - timedelta(minutes=n),
                currency="EUR",
            )
    # Not in any segment: a profiled member who never bought, and a buyer
    # without the consent.
    idle = make_member(market="FI", consents={"profiling": True})
    private = make_member(market="FI")
    buy(private, "5000.00", store="FI-001", currency="EUR")

    insights_refresh(as_of=now, market="FI")

    for member, (segment, r, f, m) in zip(members, SEGMENT_PLAN):
        score = MemberScore.objects.get(member=member)
        assert (score.segment, score.r, score.f, score.m) == (segment, r, f, m), member
    assert MemberScore.objects.get(member=idle).segment is None
    assert not MemberScore.objects.filter(member=private).exists()

    api = make_api(scopes=["insights:read"])
    body = api.get("/api/v1/insights/segments", {"market": "FI"}).json()
    assert body["market"] == "FI" and body["members"] == 10
    assert [s["segment"] for s in body["segments"]] == [s for s, _ in SEGMENTS]
    by_segment = {s["segment"]: s for s in body["segments"]}
    assert {s: v["members"] for s, v in by_segment.items()} == {
        "champions": 2,
        "loyal": 2,
        "cant_lose": 1,
        "potential": 1,
        "new": 1,
        "at_risk": 1,
        "hibernating": 1,
        "lost": 1,
    }
    assert by_segment["champions"]["action"] == "keep"
    assert by_segment["at_risk"]["action"] == "develop"
    assert by_segment["lost"]["action"] == "let_go"
    assert by_segment["champions"]["share"] == 0.2
    # Champions spent 1,000 x (m ranks 10 and 9); everyone 1,000 x 55.
    champions_ranks = [m for (s, *_), m in zip(SEGMENT_PLAN, m_ranks) if s == "champions"]
    assert Decimal(by_segment["champions"]["revenue_12m"]) == pytest.approx(
        Decimal(1000 * sum(champions_ranks)), abs=Decimal("0.10")
    )
    assert by_segment["champions"]["revenue_share"] == round(sum(champions_ranks) / 55, 4)

    # Their answers say so; the consent withdrawn, the next refresh drops the row.
    private_body = api.get(f"/api/v1/members/{private.member_number}/insights").json()
    assert private_body["profiling"] is False
    assert private_body["rfm"] is None and private_body["churn"] is None
    assert private_body["value"] is None
    Member.objects.filter(pk=members[0].pk).update(profiling=False)
    assert (
        api.get(f"/api/v1/members/{members[0].member_number}/insights").json()["profiling"] is False
    )
    insights_refresh(as_of=now, market="FI")
    assert not MemberScore.objects.filter(member=members[0]).exists()


def test_members_tied_on_a_value_share_the_lower_score(make_member):
    # Four buyers on one day, a receipt each: tied on recency and frequency
    # (rank 1 of 4: score 1), spending 100, 100, 200 and 300 (ranks 1, 1,
    # 3 and 4 of 4: scores 1, 1, 1 + floor(5 x 2 / 4) = 3 and 4).
    day = timezone.now() - timedelta(days=3)
    buyers = [make_member(market="FI", consents={"profiling": True}) for _ in range(4)]
    for n, (member, amount) in enumerate(zip(buyers, ["100.00", "100.00", "200.00", "300.00"])):
        buy(member, amount, store="FI-001", currency="EUR", occurred_at=day + timedelta(minutes=n))
    insights_refresh(market="FI")
    scores = [MemberScore.objects.get(member=member) for member in buyers]
    assert [(s.r, s.f, s.m) for s in scores] == [(1, 1, 1), (1, 1, 1), (1, 1, 3), (1, 1, 4)]
    # FM (1 + 3) / 2 = 2 and (1 + 4) / 2 rounded up = 3.
    assert [s.segment for s in scores] == ["lost", "lost", "lost", "at_risk"]


# Purchases aggregated for every member then the market's profiled buyers
# kept, or picked by member first: the same ranks.
@pytest.mark.parametrize("pick_below", [0.0, 2.0], ids=["aggregated first", "picked first"])
def test_the_ranks_count_only_the_markets_profiled_buyers(make_member, monkeypatch, pick_below):
    monkeypatch.setattr(scoring, "PICK_PURCHASES_BELOW", pick_below)
    day = timezone.now() - timedelta(days=3)
    buyers = [make_member(market="FI", consents={"profiling": True}) for _ in range(2)]
    buy(buyers[0], "100.00", store="FI-001", currency="EUR", occurred_at=day)
    buy(buyers[1], "300.00", store="FI-001", currency="EUR", occurred_at=day)
    # Buyers who are not Finland's profiled ones: counted, they would make
    # the 300 rank 4 of 4 (m 4), not 2 of 2 (m 1 + floor(5 x 1 / 2) = 3).
    private = make_member(market="FI")
    buy(private, "200.00", store="FI-001", currency="EUR", occurred_at=day)
    swede = make_member(consents={"profiling": True})
    buy(swede, "200.00", occurred_at=day)
    insights_refresh(market="FI")
    assert [MemberScore.objects.get(member=member).m for member in buyers] == [1, 3]
    assert not MemberScore.objects.filter(member__in=[private, swede]).exists()


def test_the_next_night_rewrites_each_row_and_adds_the_new_members(make_member):
    now = timezone.now()
    regular = make_member(consents={"profiling": True})
    mover = make_member(consents={"profiling": True})
    buy(regular, "100.00", occurred_at=now - timedelta(days=10))
    buy(regular, "150.00", occurred_at=now - timedelta(days=4))
    buy(mover, "200.00", occurred_at=now - timedelta(days=5))
    insights_refresh(as_of=now - timedelta(days=1), market="SE")
    before = MemberScore.objects.get(member=regular)
    assert not MemberScore.objects.filter(market__code="FI").exists()

    # The next day: a new buyer, and a member who moved to Finland.
    newcomer = make_member(consents={"profiling": True})
    buy(newcomer, "300.00", occurred_at=now - timedelta(hours=2))
    Member.objects.filter(pk=mover.pk).update(market=Market.objects.get(code="FI"))
    insights_refresh(as_of=now, market="FI")
    insights_refresh(as_of=now, market="SE")

    after = MemberScore.objects.get(member=regular)
    assert after.as_of == before.as_of + timedelta(days=1)
    assert after.recency_days == before.recency_days + 1
    assert after.t_cal == pytest.approx(before.t_cal + 1 / 7)
    assert (after.x, after.frequency_12m, after.monetary_12m) == (1, 2, Decimal("250.00"))
    added = MemberScore.objects.get(member=newcomer)
    assert (added.as_of, added.frequency_12m, added.x) == (after.as_of, 1, 0)
    assert added.p_alive is not None and added.segment is not None
    # The mover's row is Finland's now (its refresh rewrote it), and
    # Sweden's refresh, no longer profiling them, leaves it alone.
    moved = MemberScore.objects.get(member=mover)
    assert moved.market_id == Market.objects.get(code="FI").pk
    assert moved.monetary_12m == Decimal("200.00")
    assert MemberScore.objects.filter(member__in=[regular, mover, newcomer]).count() == 3


def test_the_scores_pages_leave_room_for_the_nightly_update():
    # Half of each page free: a row's next version fits beside it (HOT).
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'insights_memberscore'")
        assert cursor.fetchone()[0] == ["fillfactor=50"]


def test_the_inputs_go_in_and_out_exactly_and_a_prediction_not_finite_as_null():
    # What the fits copy in and read back (binary COPY): each double exact,
    # a non-finite prediction (a degenerate fit's) null.
    week = 1 / 7
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in _TEMP_TABLES_SQL:
            cursor.execute(statement)
        _copy_in(
            "insights_churn_inputs",
            {
                "x": np.array([0.0, 2.0, 3.0]),
                "t_x": np.array([0.0, week, 2 * week]),
                "t_cal": np.array([3 * week, 4.5, 1e300]),
                "p_alive": np.array([1.0, np.nan, 0.25]),
                "e90": np.array([0.1, 0.2, np.inf]),
                "e52": np.array([0.3, 0.4, 0.5]),
            },
        )
        cursor.execute(
            "SELECT x, t_x, t_cal, p_alive, e90, e52 FROM insights_churn_inputs ORDER BY x"
        )
        assert cursor.fetchall() == [
            (0, 0.0, 3 * week, 1.0, 0.1, 0.3),
            (2, week, 4.5, None, 0.2, 0.4),
            (3, 2 * week, 1e300, 0.25, None, 0.5),
        ]
        x, t_x, t_cal = _columns(
            "SELECT x::float8, t_x, t_cal FROM insights_churn_inputs ORDER BY x", 3
        )
        assert x.tolist() == [0.0, 2.0, 3.0]
        assert t_x.tolist() == [0.0, week, 2 * week] and t_cal.tolist() == [3 * week, 4.5, 1e300]
        assert _columns("SELECT t_x FROM insights_churn_inputs WHERE x > 5", 1).shape == (1, 0)
        with pytest.raises(ValueError, match="null"):
            _columns("SELECT p_alive FROM insights_churn_inputs", 1)


def test_a_fully_returned_purchase_does_not_count(make_member):
    member = make_member(consents={"profiling": True})
    kept = buy(member, "300.00", occurred_at=timezone.now() - timedelta(days=20))
    give_back(kept, "100.00")
    give_back(buy(member, "500.00", occurred_at=timezone.now() - timedelta(days=2)), "500.00")
    insights_refresh(market="SE")
    score = MemberScore.objects.get(member=member)
    assert score.frequency_12m == 1 and score.monetary_12m == Decimal("200.00")
    assert score.recency_days in (20, 21)  # the kept purchase's day, market time
    assert score.x == 0


def test_the_job_is_declared_and_its_command_refuses_an_unknown_market():
    spec = jobs()["insights_refresh"]
    assert spec.task_name == "insights.insights_refresh"
    assert spec.schedule == {"minute": "10", "hour": "3"}
    with pytest.raises(CommandError, match="no market XX"):
        call_command("insights_refresh", "--market", "XX")


def test_reads_before_any_refresh(make_api, make_member):
    api = make_api(scopes=["insights:read"])
    assert_problem(api.get("/api/v1/insights/model", {"market": "DK"}), 404, "not_found")
    body = api.get("/api/v1/insights/segments", {"market": "DK"}).json()
    assert body["as_of"] is None and body["members"] == 0
    member = make_member(market="DK", consents={"profiling": True})
    answer = api.get(f"/api/v1/members/{member.member_number}/insights").json()
    assert answer["profiling"] is True and answer["rfm"] is None and answer["nps"] is None
    norway = make_api(scopes=["insights:read"], markets=["NO"])
    assert_problem(norway.get(f"/api/v1/members/{member.member_number}/insights"), 404, "not_found")
    assert Market.objects.filter(code="DK").exists()
