"""campaigns/stats.py against GrowthBook's published test vectors, its
invariants (Hypothesis), its degenerate answers and the SHA-256 bucket.

The vectors come from GrowthBook (MIT), repository growthbook/growthbook,
read at commit 8f1db4456915a8e7b7faf23d5632ca7219d2f469:

- packages/stats/tests/frequentist/test_tests.py (last changed in
  13776c1bb358cec120cc89de359f7f4e734d17fa): TestTwoSidedTTest,
  TestSequentialTTest, TestOneSided*TTest; rounded there to 5 decimals, so
  here too;
- packages/back-end/test/stats.test.ts (last changed in
  0d534e07bec367260afa70b5fbc164f1e3b9e741): checkSrm, 9 decimals.

gbstats is not installed: the expected figures are copied as printed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from campaigns.stats import (
    SRM_ALPHA,
    Comparison,
    Estimate,
    VariantSums,
    compare,
    results,
    srm_p_value,
    variant_for,
)
from members.numbers import member_number_for

DECIMALS = 5  # GrowthBook's frequentist tests round to 5 places


@pytest.fixture(autouse=True)
def _club_loaded() -> None:
    """The module is pure: no demo club, so no database (conftest's loads it
    for every test, and run alone this file would load it into the real one)."""


def rounded(value: float | None, decimals: int = DECIMALS) -> float | None:
    # np.round, as GrowthBook's tests round: the same half-way rule
    return None if value is None else float(np.round(value, decimals))


def rounded_pair(pair: tuple[float, float] | None) -> tuple[float | None, ...] | None:
    return None if pair is None else tuple(rounded(x) for x in pair)


def proportion(code: str, successes: int, n: int) -> VariantSums:
    """GrowthBook's ProportionStatistic takes the variance as p(1 - p), not
    the sample variance; this sum of squares makes our (n - 1) formula give
    exactly p(1 - p), so its proportion vectors test the same arithmetic."""
    p = successes / n
    return VariantSums(code, n, successes, successes**2 / n + (n - 1) * p * (1 - p))


# test_tests.py's setUp: means 0.41 and 0.7, sds 3.9 and 6.2
BASELINE = VariantSums("control", 3407, 1396.87, 52377.9767)
TREATMENT = VariantSums("double", 3461, 2422.7, 134698.29)
# the sequential and one-sided tests' baseline: the same sums over 3000
BASELINE_3000 = VariantSums("control", 3000, 1396.87, 52377.9767)


# --- GrowthBook's vectors


def test_absolute_effect_matches_growthbook_two_sided_ttest_absolute() -> None:
    c = compare(BASELINE, TREATMENT, srm_ok=True)

    assert rounded(c.absolute.effect) == 0.29
    assert rounded_pair(c.absolute.ci95) == (0.04538, 0.53462)
    assert rounded(c.absolute.p_value) == 0.02016


def test_relative_effect_matches_growthbook_two_sided_ttest() -> None:
    # GrowthBook's relative effect is (mean_b - mean_a) / |mean_a|: for a
    # positive baseline mean that is the contract's mean_b / mean_a - 1
    c = compare(BASELINE, TREATMENT, srm_ok=True)

    assert rounded(c.relative.effect) == 0.70732
    assert rounded_pair(c.relative.ci95) == (-0.03526, 1.44989)
    assert rounded(c.relative.p_value) == 0.06191


def test_relative_effect_matches_growthbook_two_sided_ttest_binom() -> None:
    c = compare(proportion("a", 14, 28), proportion("b", 16, 30), srm_ok=True)

    assert rounded(c.relative.effect) == rounded((16 / 30 - 0.5) / 0.5)
    assert rounded_pair(c.relative.ci95) == (-0.47767, 0.61101)
    assert rounded(c.relative.p_value) == 0.80707


def test_two_sided_p_values_are_twice_growthbooks_one_sided_ones() -> None:
    # TestOneSidedGreaterTTest prints full precision: the t distribution is
    # symmetric, so the two-sided p is 2 * min(p, 1 - p) of the one-sided one
    c = compare(BASELINE_3000, TREATMENT, srm_ok=True)

    assert c.absolute.effect == pytest.approx(0.23437666666666668, rel=1e-12)
    assert c.absolute.p_value == pytest.approx(2 * 0.03554272489873023, rel=1e-9)
    assert c.relative.effect == pytest.approx(0.5033610858562358, rel=1e-12)
    assert c.relative.p_value == pytest.approx(2 * 0.06558262868467746, rel=1e-9)


def test_sequential_interval_matches_growthbook_sequential_test_runs() -> None:
    c = compare(BASELINE_3000, TREATMENT, srm_ok=True, sequential_tuning=1000)

    assert rounded(c.relative.effect) == 0.50336
    assert rounded_pair(c.sequential_ci95) == (-0.55844, 1.56516)


def test_sequential_interval_at_the_default_tuning_matches_growthbook_runs_prop() -> None:
    c = compare(proportion("a", 1396, 3000), proportion("b", 2422, 3461), srm_ok=True)

    assert rounded(c.relative.effect) == 0.50386
    assert rounded_pair(c.sequential_ci95) == (0.40098, 0.60675)
    assert c.decision == "better"  # the interval excludes 0


def test_sequential_interval_is_tightest_near_its_tuning() -> None:
    # GrowthBook's test_sequential_test_tuning_as_expected: 6461 members
    def interval(tuning: float) -> tuple[float, float]:
        c = compare(BASELINE_3000, TREATMENT, srm_ok=True, sequential_tuning=tuning)
        assert c.sequential_ci95 is not None
        return c.sequential_ci95

    below, near, above = interval(10), interval(6461), interval(10_000)

    assert below[0] < above[0] and below[1] > above[1]
    assert below[0] < near[0] and below[1] > near[1]
    assert above[0] < near[0] and above[1] > near[1]


@pytest.mark.parametrize(
    ("members", "weights", "expected"),
    [
        ([1000, 1200], [0.5, 0.5], 0.000020079),  # simple 2-way test
        ([135, 115], [0.5, 0.5], 0.205903211),  # another 2-way test
        ([310, 98], [0.75, 0.25], 0.647434186),  # uneven weights
        ([1000, 900, 800], [1, 0, 0], 1),  # not enough valid weights
        ([1000, 1200, 900], [0.5, 0.5, 0], 0.000020079),  # skip empty weights
        ([0, 0, 0], [0.34, 0.33, 0.33], 1),  # skip if all users are 0
        ([0, 10, 10], [0.34, 0.33, 0.33], 0.005790624),  # empty users count
        ([500, 500, 600], [0.34, 0.33, 0.33], 0.000592638),  # more than 2
        ([500, 500], [0.5, 0.5], 1),  # completely equal
    ],
)
def test_srm_matches_growthbook_check_srm(
    members: list[int], weights: list[float], expected: float
) -> None:
    assert rounded(srm_p_value(members, weights), 9) == expected


# --- the results answer


def test_results_answer_has_the_contracts_shape_with_unrounded_figures() -> None:
    answer = results([BASELINE, TREATMENT], [50, 50])

    assert set(answer) == {"srm", "variants", "comparisons"}
    assert set(answer["srm"]) == {"p_value", "ok"}
    assert answer["srm"]["ok"] is True
    # 3407 vs 3461 of 6868 at 50/50: 27 off 3434 each way, 1 df, where the
    # chi-square's tail is erfc(sqrt(x / 2))
    chi_square = 2 * 27**2 / 3434
    assert answer["srm"]["p_value"] == pytest.approx(math.erfc(math.sqrt(chi_square / 2)))
    assert answer["variants"] == [
        {
            "code": "control",
            "members": 3407,
            "sum": 1396.87,
            "sum_squares": 52377.9767,
            "mean": 1396.87 / 3407,
        },
        {
            "code": "double",
            "members": 3461,
            "sum": 2422.7,
            "sum_squares": 134698.29,
            "mean": 2422.7 / 3461,
        },
    ]
    [comparison] = answer["comparisons"]
    assert set(comparison) == {
        "variant",
        "baseline",
        "absolute",
        "relative",
        "sequential",
        "decision",
    }
    assert (comparison["variant"], comparison["baseline"]) == ("double", "control")
    assert set(comparison["absolute"]) == {"effect", "ci95", "p_value"}
    assert set(comparison["relative"]) == {"effect", "ci95", "p_value"}
    assert set(comparison["sequential"]) == {"ci95"}
    direct = compare(BASELINE, TREATMENT, srm_ok=True)
    assert comparison["absolute"]["ci95"] == list(direct.absolute.ci95)  # not rounded
    assert comparison["relative"]["p_value"] == direct.relative.p_value
    assert comparison["sequential"]["ci95"] == list(direct.sequential_ci95)
    assert comparison["decision"] == "inconclusive"
    assert all(type(x) is float for x in comparison["absolute"]["ci95"])  # not numpy
    json.dumps(answer, allow_nan=False)


def test_every_variant_is_compared_with_the_first() -> None:
    third = VariantSums("triple", 3300, 2000.0, 90000.0)

    answer = results([BASELINE, TREATMENT, third], [1, 1, 1])

    assert [(c["variant"], c["baseline"]) for c in answer["comparisons"]] == [
        ("double", "control"),
        ("triple", "control"),
    ]


def test_decision_is_better_or_worse_only_when_the_sequential_interval_excludes_0() -> None:
    low = VariantSums("low", 5000, 50_000.0, 5000 * (10.0**2 + 5.0**2))  # mean 10, sd ~5
    high = VariantSums("high", 5000, 60_000.0, 5000 * (12.0**2 + 5.0**2))  # mean 12

    up = compare(low, high, srm_ok=True)
    down = compare(high, low, srm_ok=True)

    assert up.sequential_ci95[0] > 0 and up.decision == "better"
    assert down.sequential_ci95[1] < 0 and down.decision == "worse"


def test_fixed_interval_excluding_0_is_not_yet_a_decision() -> None:
    # the absolute effect is significant at p 0.02 and the relative one
    # nearly: read once that would be a win; the always-valid interval says not yet
    c = compare(BASELINE, TREATMENT, srm_ok=True)

    assert c.absolute.ci95[0] > 0
    assert c.sequential_ci95[0] < 0 < c.sequential_ci95[1]
    assert c.decision == "inconclusive"


def test_a_broken_split_gives_no_decision() -> None:
    low = VariantSums("low", 5000, 50_000.0, 5000 * (10.0**2 + 5.0**2))
    high = VariantSums("high", 7000, 84_000.0, 7000 * (12.0**2 + 5.0**2))

    answer = results([low, high], [50, 50])

    assert answer["srm"]["p_value"] < SRM_ALPHA
    assert answer["srm"]["ok"] is False
    assert answer["comparisons"][0]["sequential"]["ci95"][0] > 0  # it would have won
    assert answer["comparisons"][0]["decision"] == "invalid"


# --- degenerate input: None (null) where a figure is not defined


def assert_no_test(c: Comparison) -> None:
    assert c.absolute.ci95 is None and c.absolute.p_value is None
    assert c.relative.ci95 is None and c.relative.p_value is None
    assert c.sequential_ci95 is None


def test_a_variant_without_members_has_no_mean_and_no_effects() -> None:
    empty = VariantSums("double", 0, 0, 0)

    c = compare(BASELINE, empty, srm_ok=True)
    answer = results([BASELINE, empty], [50, 50])

    assert empty.mean is None and empty.variance is None
    assert c.absolute.effect is None and c.relative.effect is None
    assert_no_test(c)
    assert c.decision == "inconclusive"
    assert answer["variants"][1]["mean"] is None
    assert answer["comparisons"][0]["absolute"] == {"effect": None, "ci95": None, "p_value": None}
    assert answer["comparisons"][0]["sequential"] == {"ci95": None}
    assert answer["srm"]["ok"] is False  # 3407 against none at 50/50
    json.dumps(answer, allow_nan=False)


def test_one_member_each_gives_effects_without_intervals() -> None:
    c = compare(VariantSums("a", 1, 4.0, 16.0), VariantSums("b", 1, 5.0, 25.0), srm_ok=True)

    assert c.absolute.effect == 1.0
    assert c.relative.effect == pytest.approx(0.25)
    assert_no_test(c)
    assert c.decision == "inconclusive"


def test_zero_variance_gives_effects_without_intervals() -> None:
    # every member of both variants retained (metric 1): no spread to test
    everyone = VariantSums("a", 100, 100, 100)
    most = VariantSums("b", 100, 90, 90)

    c = compare(everyone, most, srm_ok=True)

    assert everyone.variance == 0.0
    assert c.absolute.effect == pytest.approx(-0.1)
    assert c.relative.effect == pytest.approx(-0.1)
    assert_no_test(c)


def test_a_variance_that_is_only_rounding_counts_as_zero() -> None:
    # three members of 0.1: 0.03 - 0.3^2 / 3 is not exactly 0 in floats
    same = VariantSums("a", 3, 0.1 + 0.1 + 0.1, 0.01 + 0.01 + 0.01)

    assert same.sum_squares - same.sum**2 / same.n != 0
    assert same.variance == 0.0


def test_growthbooks_missing_variance_vector_gives_no_test() -> None:
    # test_two_sided_ttest_missing_variance: these sums over 2 members have
    # a negative centred sum; GrowthBook answers its default output
    impossible = VariantSums("a", 2, 1396.87, 52377.9767)

    c = compare(impossible, TREATMENT, srm_ok=True)

    assert impossible.variance == 0.0
    assert_no_test(c)
    assert c.absolute.effect == pytest.approx(0.7 - 1396.87 / 2)


def test_a_zero_baseline_mean_has_no_relative_effect() -> None:
    spread_around_0 = VariantSums("a", 4, 0.0, 4.0)  # -1, 1, -1, 1

    c = compare(spread_around_0, TREATMENT, srm_ok=True)

    assert c.absolute.effect == pytest.approx(0.7)
    assert c.absolute.ci95 is not None and c.absolute.p_value is not None
    assert c.relative == Estimate(None, None, None)
    assert c.sequential_ci95 is None
    assert c.decision == "inconclusive"


def test_a_vanishing_baseline_mean_gives_no_interval_rather_than_overflow() -> None:
    tiny = VariantSums("a", 4, 4e-200, 4.0)

    answer = results([tiny, TREATMENT], [4, 3461])

    relative = answer["comparisons"][0]["relative"]
    assert relative["ci95"] is None and relative["p_value"] is None
    json.dumps(answer, allow_nan=False)


def test_decimal_sums_from_postgres_are_taken_as_floats() -> None:
    v = VariantSums("control", 3407, Decimal("1396.87"), Decimal("52377.9767"))

    assert type(v.sum) is float and v == BASELINE


@pytest.mark.parametrize(
    "make",
    [
        lambda: VariantSums("a", -1, 0, 0),
        lambda: VariantSums("a", 2, math.nan, 0),
        lambda: VariantSums("a", 2, 1, -1),
        lambda: srm_p_value([1, 2], [1]),
        lambda: srm_p_value([1, -2], [1, 1]),
        lambda: results([], []),
        lambda: results([BASELINE], [1, 1]),
        lambda: compare(BASELINE, TREATMENT, srm_ok=True, sequential_tuning=0),
        lambda: variant_for("EXP", "1", []),
        lambda: variant_for("EXP", "1", [("a", 0), ("b", 0)]),
    ],
)
def test_input_no_caller_can_mean_is_refused(make) -> None:
    with pytest.raises(ValueError):
        make()


# --- invariants


def sums(code: str, n: int, mean: float, sd: float) -> VariantSums:
    return VariantSums(code, n, n * mean, (n - 1) * sd * sd + n * mean * mean)


variant_sums = st.builds(
    sums,
    code=st.just("v"),
    n=st.integers(min_value=5, max_value=1_000_000),
    mean=st.floats(min_value=-1000, max_value=1000).filter(lambda m: abs(m) > 1e-3),
    sd=st.floats(min_value=0.1, max_value=1000),
)


@settings(max_examples=300, deadline=None)
@given(baseline=variant_sums, variant=variant_sums, tuning=st.floats(10, 1e6))
def test_intervals_contain_their_effect_and_the_sequential_one_is_wider(
    baseline: VariantSums, variant: VariantSums, tuning: float
) -> None:
    c = compare(baseline, variant, srm_ok=True, sequential_tuning=tuning)
    assume(c.relative.ci95 is not None)

    for estimate in (c.absolute, c.relative):
        low, high = estimate.ci95
        assert low <= estimate.effect <= high
        assert 0 <= estimate.p_value <= 1
    # eq. 9's half-width is at least 3.035 standard errors whatever n and
    # tuning; Welch's df >= min(n) - 1 >= 4 puts t_0.975 below 2.777
    seq_low, seq_high = c.sequential_ci95
    assert seq_low < c.relative.ci95[0] and c.relative.ci95[1] < seq_high
    assert c.decision in {"better", "worse", "inconclusive"}
    assert (c.decision == "better") == (seq_low > 0)
    assert (c.decision == "worse") == (seq_high < 0)


@settings(max_examples=300, deadline=None)
@given(
    members=st.lists(st.integers(0, 10**7), min_size=1, max_size=6),
    data=st.data(),
)
def test_srm_p_value_is_a_probability(members: list[int], data: st.DataObject) -> None:
    weights = data.draw(st.lists(st.floats(0, 100), min_size=len(members), max_size=len(members)))

    assert 0 <= srm_p_value(members, weights) <= 1


any_sums = st.builds(
    VariantSums,
    code=st.sampled_from(["a", "b", "c"]),
    n=st.integers(0, 10),
    sum=st.floats(-1e6, 1e6),
    sum_squares=st.floats(0, 1e12),
)


@settings(max_examples=300, deadline=None)
@given(variants=st.lists(any_sums, min_size=1, max_size=4), data=st.data())
def test_results_of_any_sums_are_json_without_nan(
    variants: list[VariantSums], data: st.DataObject
) -> None:
    weights = data.draw(
        st.lists(st.integers(0, 100), min_size=len(variants), max_size=len(variants))
    )

    json.dumps(results(variants, weights), allow_nan=False)


# --- the bucket


TEN_THOUSAND = [member_number_for(sequence) for sequence in range(1, 10_001)]


def test_a_fair_split_of_10000_members_is_not_flagged() -> None:
    arms = [("control", 50), ("double", 50)]

    counts = Counter(variant_for("EXP-DOUBLE", number, arms) for number in TEN_THOUSAND)
    p_value = srm_p_value([counts["control"], counts["double"]], [50, 50])

    assert sum(counts.values()) == 10_000
    assert 4800 < counts["control"] < 5200
    assert p_value >= SRM_ALPHA


def test_a_split_read_against_the_wrong_weights_is_flagged() -> None:
    arms = [("control", 50), ("double", 50)]

    counts = Counter(variant_for("EXP-DOUBLE", number, arms) for number in TEN_THOUSAND)

    assert srm_p_value([counts["control"], counts["double"]], [60, 40]) < SRM_ALPHA


def test_uneven_weights_are_honoured_and_a_zero_weight_never_drawn() -> None:
    arms = [("a", 20), ("off", 0), ("b", 30), ("c", 50)]

    counts = Counter(variant_for("EXP-THREE", number, arms) for number in TEN_THOUSAND)

    assert counts["off"] == 0
    assert srm_p_value([counts[code] for code, _ in arms], [w for _, w in arms]) >= SRM_ALPHA
    assert 1800 < counts["a"] < 2200 and 4800 < counts["c"] < 5200


def test_the_bucket_is_the_contracts_digest_over_2_256() -> None:
    # the contract's words, in floats (no draw here falls on a boundary)
    arms = [("a", 1), ("b", 2), ("c", 1)]
    for number in TEN_THOUSAND[:200]:
        digest = hashlib.sha256(f"EXP-DOUBLE:{number}".encode()).digest()
        bucket = int.from_bytes(digest, "big") / 2**256
        expected = "a" if bucket < 0.25 else "b" if bucket < 0.75 else "c"

        assert variant_for("EXP-DOUBLE", number, arms) == expected


def test_the_bucket_depends_on_the_experiment() -> None:
    arms = [("a", 1), ("b", 1)]

    first = [variant_for("EXP-ONE", n, arms) for n in TEN_THOUSAND[:1000]]
    second = [variant_for("EXP-TWO", n, arms) for n in TEN_THOUSAND[:1000]]

    # independent fair coins agree about half the time, not always
    assert 400 < sum(x == y for x, y in zip(first, second)) < 600
