"""Experiments as API.md "Experiments" writes them: creation, the lock on
metric and variants, assignment at exposure, results end to end, the
freeze at the end, and campaigns tied to a variant."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from scipy import stats as scipy_stats

from campaigns import stats
from campaigns.experiments import experiments_freeze
from campaigns.models import Assignment, Experiment, Variant
from club.models import Market, Tier
from members.models import Member
from members.numbers import member_number_for
from tests.campaigns.helpers import make_campaign
from tests.helpers import assert_problem, buy, give_back

pytestmark = pytest.mark.django_db

URL = "/api/v1/experiments"


def experiment_body(code: str = "EXP-DOUBLE", **fields: Any) -> dict[str, Any]:
    now = timezone.now()
    body: dict[str, Any] = {
        "code": code,
        "name": "Double points on tools",
        "market": "SE",
        "hypothesis": "Double points on tools raise 30-day spend",
        "metric": "revenue",
        "window_days": 30,
        "variants": [{"code": "control", "weight": 50}, {"code": "double", "weight": 50}],
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=30)).isoformat(),
    }
    body.update(fields)
    return body


def expose(api: Any, member: Member, code: str = "EXP-DOUBLE") -> Any:
    return api.post(
        f"{URL}/{code}/exposures",
        {"member": {"member_number": member.member_number}},
        format="json",
    )


def test_create_answers_the_experiment(api):
    make_campaign("DOUBLE-TOOLS", categories=["tools"])
    variants = [
        {"code": "control", "weight": 50},
        {"code": "double", "weight": 50, "campaign": "DOUBLE-TOOLS"},
    ]
    response = api.post(URL, experiment_body(variants=variants), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "running" and body["metric"] == "revenue"
    assert body["variants"] == [
        {"code": "control", "weight": 50, "campaign": None},
        {"code": "double", "weight": 50, "campaign": "DOUBLE-TOOLS"},
    ]
    assert body["members"] == 0
    assert_problem(api.post(URL, experiment_body(), format="json"), 409, "already_exists")
    later = experiment_body(
        "EXP-LATER",
        starts_at=(timezone.now() + timedelta(days=1)).isoformat(),
        ends_at=(timezone.now() + timedelta(days=2)).isoformat(),
    )
    assert api.post(URL, later, format="json").json()["status"] == "scheduled"


@pytest.mark.parametrize(
    "change",
    [
        {"variants": [{"code": "only", "weight": 100}]},
        {"variants": [{"code": "a", "weight": 50}, {"code": "a", "weight": 50}]},
        {"variants": [{"code": "a", "weight": 0}, {"code": "b", "weight": 50}]},
        {"variants": [{"code": "a", "weight": 5}, {"code": "b", "weight": 5, "campaign": "NOPE"}]},
        {"metric": "happiness"},
        {"window_days": 0},
        {"ends_at": (timezone.now() - timedelta(days=3)).isoformat()},
        {"market": "XX"},
        {"status": "running"},
    ],
)
def test_bad_input_is_refused_and_nothing_is_created(api, change):
    assert_problem(api.post(URL, experiment_body(**change), format="json"), 400, "validation_error")
    assert not Experiment.objects.exists()


def test_a_campaign_is_the_offer_of_one_experiment_only(api):
    make_campaign("OFFER")
    variants = [{"code": "a", "weight": 1}, {"code": "b", "weight": 1, "campaign": "OFFER"}]
    assert api.post(URL, experiment_body("E1", variants=variants), format="json").status_code == 201
    response = api.post(URL, experiment_body("E2", variants=variants), format="json")
    assert_problem(response, 400, "validation_error")


def test_scopes(make_api, make_member):
    reader = make_api(scopes=["insights:read"])
    assert_problem(reader.post(URL, experiment_body(), format="json"), 403, "permission_denied")
    writer = make_api(scopes=["campaigns:write"])
    assert writer.post(URL, experiment_body(), format="json").status_code == 201
    assert_problem(writer.get(f"{URL}/EXP-DOUBLE/results"), 403, "permission_denied")
    assert_problem(expose(writer, make_member()), 403, "permission_denied")
    assert reader.get(f"{URL}/EXP-DOUBLE/results").status_code == 200
    assert (
        make_api(scopes=["members:write"])
        .post(
            f"{URL}/EXP-DOUBLE/exposures",
            {"member": {"member_number": make_member().member_number}},
            format="json",
        )
        .status_code
        == 200
    )


def test_the_same_member_gets_the_same_variant_and_assigned_at_on_every_call(api, make_member):
    api.post(URL, experiment_body(), format="json")
    member = make_member()
    first = expose(api, member)
    assert first.status_code == 200, first.content
    again = expose(api, member)
    assert again.json() == first.json()
    assert first.json()["variant"] == stats.variant_for(
        "EXP-DOUBLE", member.member_number, [("control", 50), ("double", 50)]
    )
    assert Assignment.objects.filter(member=member).count() == 1


def test_another_process_computes_the_same_variant(make_member):
    numbers = [member_number_for(i) for i in range(1, 41)]
    variants = [("control", 30), ("a", 30), ("b", 40)]
    here = [stats.variant_for("EXP-X", n, variants) for n in numbers]
    code = (
        "import sys; from campaigns.stats import variant_for; "
        f"print(','.join(variant_for('EXP-X', n, {variants!r}) for n in sys.argv[1:]))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code, *numbers], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert there.split(",") == here
    assert set(here) == {"control", "a", "b"}  # 40 members fall in every share


def test_exposures_outside_the_experiments_run_or_market_are_refused(api, make_member):
    now = timezone.now()
    later = experiment_body(
        starts_at=(now + timedelta(days=1)).isoformat(),
        ends_at=(now + timedelta(days=2)).isoformat(),
    )
    api.post(URL, later, format="json")
    assert_problem(expose(api, make_member()), 409, "invalid_state")
    api.post(URL, experiment_body("EXP-SE"), format="json")
    assert_problem(expose(api, make_member(market="NO"), "EXP-SE"), 404, "not_found")
    assert_problem(expose(api, make_member(), "EXP-NONE"), 404, "not_found")
    assert not Assignment.objects.exists()


def test_metric_variants_and_weights_lock_at_the_first_assignment(api, make_member):
    api.post(URL, experiment_body(), format="json")
    three = [
        {"code": "control", "weight": 40},
        {"code": "x", "weight": 30},
        {"code": "y", "weight": 30},
    ]
    response = api.patch(
        f"{URL}/EXP-DOUBLE", {"variants": three, "metric": "purchases"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert [v["code"] for v in response.json()["variants"]] == ["control", "x", "y"]
    expose(api, make_member())
    for change in ({"metric": "revenue"}, {"variants": three}):
        assert_problem(
            api.patch(f"{URL}/EXP-DOUBLE", change, format="json"), 409, "experiment_locked"
        )
    renamed = api.patch(f"{URL}/EXP-DOUBLE", {"name": "New", "hypothesis": "H2"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "New"
    assert Experiment.objects.get().metric == "purchases"
    assert_problem(
        api.patch(f"{URL}/EXP-DOUBLE", {"code": "X"}, format="json"), 400, "validation_error"
    )


def test_a_campaign_tied_to_a_variant_rewards_only_its_members(api, make_member):
    make_campaign("DOUBLE-TOOLS", categories=["tools"])
    variants = [
        {"code": "control", "weight": 50},
        {"code": "double", "weight": 50, "campaign": "DOUBLE-TOOLS"},
    ]
    api.post(URL, experiment_body(variants=variants), format="json")
    members = [make_member() for _ in range(12)]
    unassigned = make_member()
    assigned = {m.pk: expose(api, m).json()["variant"] for m in members}
    assert set(assigned.values()) == {"control", "double"}
    for member in members:
        bonuses = buy(member, "100.00")["bonuses"]
        expected = (
            [{"campaign": "DOUBLE-TOOLS", "points": 100}] if assigned[member.pk] == "double" else []
        )
        assert bonuses == expected
    assert buy(unassigned, "100.00")["bonuses"] == []


# --- results ------------------------------------------------------------------------


def _assign(experiment: Experiment, member: Member, variant: str, *, days_ago: float = 1) -> None:
    """An assignment made `days_ago` (the window then holds purchases of the past)."""
    at = timezone.now() - timedelta(days=days_ago)
    Assignment.objects.create(
        experiment=experiment,
        member=member,
        variant=Variant.objects.get(experiment=experiment, code=variant),
        assigned_at=at,
        window_ends_at=at + timedelta(days=experiment.window_days),
    )


def test_results_end_to_end_on_a_hand_checked_set(api, make_member):
    api.post(URL, experiment_body(window_days=7), format="json")
    experiment = Experiment.objects.get()
    spend = {"control": [100, 0, 50, 30], "double": [200, 100, 0, 40, 60]}
    for variant, amounts in spend.items():
        for amount in amounts:
            member = make_member()
            _assign(experiment, member, variant)
            if amount:
                buy(member, f"{amount}.00", occurred_at=timezone.now() - timedelta(hours=2))
            # outside the window: before the assignment, and never counted
            buy(member, "999.00", occurred_at=timezone.now() - timedelta(days=2))
    response = api.get(f"{URL}/EXP-DOUBLE/results")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["code"], body["metric"], body["status"]) == ("EXP-DOUBLE", "revenue", "running")
    control, double = body["variants"]
    # control: n 4, sum 180, sum of squares 10000 + 2500 + 900
    assert control == {
        "code": "control",
        "members": 4,
        "sum": 180.0,
        "sum_squares": 13400.0,
        "mean": 45.0,
    }
    # double: n 5, sum 400, sum of squares 40000 + 10000 + 1600 + 3600
    assert double == {
        "code": "double",
        "members": 5,
        "sum": 400.0,
        "sum_squares": 55200.0,
        "mean": 80.0,
    }
    (comparison,) = body["comparisons"]
    assert comparison["variant"] == "double" and comparison["baseline"] == "control"
    assert comparison["absolute"]["effect"] == pytest.approx(35.0)
    assert comparison["relative"]["effect"] == pytest.approx(80 / 45 - 1)
    # Welch's test, independently: scipy from the hand-computed means and variances
    var_c = (13400 - 180**2 / 4) / 3
    var_d = (55200 - 400**2 / 5) / 4
    welch = scipy_stats.ttest_ind_from_stats(
        80, math.sqrt(var_d), 5, 45, math.sqrt(var_c), 4, equal_var=False
    )
    assert comparison["absolute"]["p_value"] == pytest.approx(welch.pvalue, rel=1e-9)
    # 7 degrees of freedom at most: nothing is decided on 9 members
    assert comparison["decision"] == "inconclusive"
    assert body["srm"]["ok"] is True


def test_results_count_returns_and_the_other_metrics(api, make_member):
    api.post(URL, experiment_body(metric="purchases", window_days=7), format="json")
    experiment = Experiment.objects.get()
    make_campaign("TEN", reward=10)
    buyer, returner, idle = make_member(), make_member(), make_member()
    for member in (buyer, returner, idle):
        _assign(experiment, member, "control")
    buy(buyer, "100.00")
    buy(buyer, "50.00")
    kept = buy(returner, "80.00")
    gone = buy(returner, "20.00")
    give_back(kept, "30.00")
    give_back(gone, "20.00")

    def figures(metric: str) -> tuple[int, float, float]:
        Experiment.objects.filter(pk=experiment.pk).update(metric=metric)
        row = api.get(f"{URL}/EXP-DOUBLE/results").json()["variants"][0]
        return row["members"], row["sum"], row["sum_squares"]

    # purchases not fully returned: 2, 1, 0
    assert figures("purchases") == (3, 3.0, 5.0)
    # revenue net of returns: 150, 50, 0
    assert figures("revenue") == (3, 200.0, 150.0**2 + 50.0**2)
    # points net of returns, campaign bonuses included. buyer: 100 + 50 earned and
    # 10 + 10 bonus; returner: 80 - 30 earned and 10 - floor(10 x 30/80) bonus, and
    # the fully returned 20 gives all of its points back
    n, total, _ = figures("points_earned")
    assert (n, total) == (3, 170 + 50 + 7)
    assert figures("retained") == (3, 2.0, 2.0)


def test_ending_freezes_the_results(api, make_member):
    api.post(URL, experiment_body(window_days=7), format="json")
    experiment = Experiment.objects.get()
    member = make_member()
    _assign(experiment, member, "double")
    buy(member, "100.00")
    ended = api.patch(f"{URL}/EXP-DOUBLE", {"ends_at": timezone.now().isoformat()}, format="json")
    assert ended.status_code == 200 and ended.json()["status"] == "ended"
    frozen = api.get(f"{URL}/EXP-DOUBLE/results").json()
    assert frozen["status"] == "ended" and frozen["variants"][1]["sum"] == 100.0
    buy(member, "500.00")  # after the end: the stored results stay as they were
    assert api.get(f"{URL}/EXP-DOUBLE/results").json() == frozen
    assert Experiment.objects.get().results == frozen
    assert_problem(expose(api, make_member()), 409, "invalid_state")
    later = (timezone.now() + timedelta(days=3)).isoformat()
    assert_problem(
        api.patch(f"{URL}/EXP-DOUBLE", {"ends_at": later}, format="json"), 409, "invalid_state"
    )


def test_the_job_freezes_experiments_that_ended_once(api, make_member):
    api.post(URL, experiment_body(window_days=7), format="json")
    experiment = Experiment.objects.get()
    _assign(experiment, make_member(), "control")
    assert experiments_freeze(as_of=timezone.now()).rows == 0
    Experiment.objects.filter(pk=experiment.pk).update(
        ends_at=timezone.now() - timedelta(minutes=1)
    )
    assert experiments_freeze(as_of=timezone.now()).rows == 1
    assert experiments_freeze(as_of=timezone.now()).rows == 0
    stored = Experiment.objects.get()
    assert stored.results["status"] == "ended" and stored.frozen_at is not None


def _members_bulk(n: int) -> list[Member]:
    """n members at once (no cards or accounts: results only read purchases)."""
    market, tier = Market.objects.get(code="SE"), Tier.objects.order_by("rank").first()
    start = Member.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return Member.objects.bulk_create(
        [
            Member(
                market=market,
                tier=tier,
                member_number=member_number_for(start + 500_000 + i),
                email=f"bulk{i}@example.test",
            )
            for i in range(n)
        ]
    )


def test_ten_thousand_members_split_within_what_srm_accepts(api):
    api.post(URL, experiment_body(), format="json")
    experiment = Experiment.objects.get()
    variants = {v.code: v for v in Variant.objects.filter(experiment=experiment)}
    now = timezone.now()
    members = _members_bulk(10_000)
    Assignment.objects.bulk_create(
        [
            Assignment(
                experiment=experiment,
                member=m,
                variant=variants[
                    stats.variant_for(
                        "EXP-DOUBLE", m.member_number, [("control", 50), ("double", 50)]
                    )
                ],
                assigned_at=now,
                window_ends_at=now + timedelta(days=30),
            )
            for m in members
        ]
    )
    body = api.get(f"{URL}/EXP-DOUBLE/results").json()
    split = [v["members"] for v in body["variants"]]
    assert sum(split) == 10_000 and body["srm"]["ok"] is True, split
    assert body["srm"]["p_value"] >= 0.001
    assert body["comparisons"][0]["decision"] != "invalid"


def test_a_broken_split_gives_srm_not_ok_and_no_decision(api):
    api.post(URL, experiment_body(), format="json")
    experiment = Experiment.objects.get()
    variants = list(Variant.objects.filter(experiment=experiment).order_by("position"))
    now = timezone.now()
    members = _members_bulk(1_000)
    Assignment.objects.bulk_create(
        [
            Assignment(
                experiment=experiment,
                member=m,
                variant=variants[0] if i < 600 else variants[1],  # 60/40 against weights 50/50
                assigned_at=now,
                window_ends_at=now + timedelta(days=30),
            )
            for i, m in enumerate(members)
        ]
    )
    body = api.get(f"{URL}/EXP-DOUBLE/results").json()
    assert [v["members"] for v in body["variants"]] == [600, 400]
    assert body["srm"]["ok"] is False and body["srm"]["p_value"] < 0.001
    assert body["comparisons"][0]["decision"] == "invalid"
