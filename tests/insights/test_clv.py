"""insights.clv against the published CDNOW figures, and its properties.

Published figures: Fader, Hardie and Lee (2005), "Counting your customers
the easy way" (BG/NBD on the 2,357 CDNOW customers, calibration to
1997-09-30) and their notes on it; Fader and Hardie, "The Gamma-Gamma
model of monetary value" (its 946 customers with repeat purchases); the
lifetimes README (conditional expected average profit of its first
customers).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from insights.clv import (
    BgNbd,
    GammaGamma,
    bgnbd_expected_purchases,
    bgnbd_fit,
    bgnbd_p_alive,
    gamma_gamma_expected_spend,
    gamma_gamma_fit,
    gamma_gamma_mean,
)
from tests.insights.cdnow import CDNOW_CALIBRATION_END, CdnowInputs, cdnow_inputs

WITHIN = 0.005  # 0.5 %


@pytest.fixture(scope="module")
def cdnow() -> CdnowInputs:
    return cdnow_inputs(CDNOW_CALIBRATION_END)


@pytest.fixture(scope="module")
def bgnbd(cdnow: CdnowInputs) -> BgNbd:
    return bgnbd_fit(cdnow.x, cdnow.t_x, cdnow.T)


@pytest.fixture(scope="module")
def gamma_gamma(cdnow: CdnowInputs) -> GammaGamma:
    repeat = cdnow.x > 0
    return gamma_gamma_fit(cdnow.x[repeat], cdnow.mean_value[repeat])


# --- the inputs -------------------------------------------------------------


def test_the_cdnow_inputs_are_the_published_ones(cdnow: CdnowInputs) -> None:
    assert len(cdnow.customers) == 2357
    assert int((cdnow.x > 0).sum()) == 946
    # The first customer: 4 purchases on 4 days, 3 of them by 1997-09-30.
    assert cdnow.customers[0] == "00004"
    assert (cdnow.x[0], round(cdnow.t_x[0], 2), round(cdnow.T[0], 2)) == (2, 30.43, 38.86)
    assert cdnow.mean_value[0] == pytest.approx((29.73 + 14.96) / 2)
    # Same-day purchases are one transaction: the sample has 2,357 first
    # days, so the repeat transactions are the distinct days less those.
    assert cdnow.x.sum() == 2457


# --- BG/NBD -----------------------------------------------------------------


def test_bgnbd_fit_gives_the_published_estimates(bgnbd: BgNbd) -> None:
    assert bgnbd.r == pytest.approx(0.243, rel=WITHIN)
    assert bgnbd.alpha == pytest.approx(4.414, rel=WITHIN)
    assert bgnbd.a == pytest.approx(0.793, rel=WITHIN)
    assert bgnbd.b == pytest.approx(2.426, rel=WITHIN)
    assert bgnbd.log_likelihood == pytest.approx(-9582.4, rel=WITHIN)
    assert bgnbd.members == 2357


def test_bgnbd_p_alive_of_the_first_customer(bgnbd: BgNbd, cdnow: CdnowInputs) -> None:
    p_alive = bgnbd_p_alive(bgnbd, cdnow.x[:1], cdnow.t_x[:1], cdnow.T[:1])
    assert p_alive.shape == (1,)
    assert p_alive[0] == pytest.approx(0.7266, abs=0.001)


def test_bgnbd_expected_purchases_of_the_first_customer(bgnbd: BgNbd) -> None:
    # Fader, Hardie and Lee (2005): E[Y(39) | x = 2, t_x = 30.43, T = 38.86] = 1.226.
    expected = bgnbd_expected_purchases(bgnbd, 39, [2], [30.43], [38.86])
    assert expected[0] == pytest.approx(1.226, abs=0.001)


def test_bgnbd_grouped_fit_equals_the_fit_member_by_member(
    bgnbd: BgNbd, cdnow: CdnowInputs
) -> None:
    rows = np.column_stack([cdnow.x, np.round(cdnow.t_x * 7), np.round(cdnow.T * 7)])
    unique, weights = np.unique(rows, axis=0, return_counts=True)
    assert len(unique) < len(rows) / 2  # grouping does shrink the input
    grouped = bgnbd_fit(unique[:, 0], unique[:, 1] / 7, unique[:, 2] / 7, weights=weights)
    assert grouped.members == bgnbd.members
    assert grouped.log_likelihood == pytest.approx(bgnbd.log_likelihood, abs=1e-4)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(grouped, name) == pytest.approx(getattr(bgnbd, name), rel=1e-4), name


def test_bgnbd_a_member_without_repeat_purchase_is_alive(bgnbd: BgNbd) -> None:
    p_alive = bgnbd_p_alive(bgnbd, [0, 0, 0], [0, 0, 0], [0.0, 10.0, 500.0])
    assert p_alive.tolist() == [1.0, 1.0, 1.0]


def test_bgnbd_p_alive_falls_with_the_silence_since_the_last_purchase(bgnbd: BgNbd) -> None:
    p_alive = bgnbd_p_alive(bgnbd, [3, 3, 3], [20, 20, 20], [20.0, 30.0, 60.0])
    assert p_alive[0] > p_alive[1] > p_alive[2] > 0


def test_bgnbd_expected_purchases_grow_with_the_horizon(bgnbd: BgNbd) -> None:
    x, t_x, T = [0, 2, 10], [0, 30.43, 35], [38.86, 38.86, 38.86]
    horizons = [0, 1, 4, 13, 52, 520]
    expected = np.array([bgnbd_expected_purchases(bgnbd, t, x, t_x, T) for t in horizons])
    assert expected[0].tolist() == [0.0, 0.0, 0.0]
    assert np.all(np.diff(expected, axis=0) > 0)


def test_bgnbd_expected_purchases_of_a_very_frequent_buyer_stay_finite(bgnbd: BgNbd) -> None:
    # 2F1(r + x, b + x; ...) overflows for such x; the transformed form does not.
    expected = bgnbd_expected_purchases(bgnbd, 52, [400, 2000], [38.5, 38.8], [38.86, 38.86])
    assert np.all(np.isfinite(expected))
    # Alive, such a member keeps buying at about their own rate, ~10 and ~51 a week.
    assert 52 * 5 < expected[0] < 52 * 15
    assert 52 * 30 < expected[1] < 52 * 70


def test_bgnbd_expected_purchases_pass_through_a_equal_to_1(bgnbd: BgNbd) -> None:
    # (a + b + x - 1) / (a - 1) * (1 - ...) is 0 / 0 at a == 1, where a fit on
    # data without any sign of dropping out (no repeat purchases) stays.
    x, t_x, T = [0, 2, 10], [0, 30.43, 35], [38.86, 38.86, 38.86]
    at = {
        a: bgnbd_expected_purchases(replace(bgnbd, a=a), 39, x, t_x, T) for a in (0.999, 1.0, 1.001)
    }
    assert np.all(np.isfinite(at[1.0]))
    assert np.all(np.minimum(at[0.999], at[1.001]) < at[1.0])
    assert np.all(at[1.0] < np.maximum(at[0.999], at[1.001]))
    assert at[1.0] == pytest.approx((at[0.999] + at[1.001]) / 2, rel=1e-5)


@pytest.mark.parametrize(
    "x, t_x, T, weights",
    [
        ([], [], [], None),  # nobody to fit
        ([1, 2], [1.0], [3.0, 4.0], None),  # lengths differ
        ([-1], [0.0], [3.0], None),
        ([1.5], [1.0], [3.0], None),  # not a count
        ([1], [4.0], [3.0], None),  # last purchase after the end
        ([0], [1.0], [3.0], None),  # a recency without a repeat purchase
        ([1], [float("nan")], [3.0], None),
        ([1], [1.0], [float("inf")], None),
        ([[1]], [[1.0]], [[3.0]], None),
        (["a"], [1.0], [3.0], None),
        ([1], [1.0], [3.0], [-1]),
        ([1, 0], [1.0, 0.0], [3.0, 3.0], [0, 0]),
        ([1, 0], [1.0, 0.0], [3.0, 3.0], [1]),
    ],
)
def test_bgnbd_refuses_bad_input(x, t_x, T, weights) -> None:
    with pytest.raises(ValueError):
        bgnbd_fit(x, t_x, T, weights=weights)


def test_bgnbd_predictions_refuse_bad_input(bgnbd: BgNbd) -> None:
    with pytest.raises(ValueError, match="t must be"):
        bgnbd_expected_purchases(bgnbd, -1, [1], [1.0], [2.0])
    with pytest.raises(ValueError, match="t_x must lie"):
        bgnbd_p_alive(bgnbd, [1], [3.0], [2.0])


# --- Gamma-Gamma ------------------------------------------------------------


def test_gamma_gamma_fit_gives_the_published_estimates(gamma_gamma: GammaGamma) -> None:
    assert gamma_gamma.p == pytest.approx(6.25, rel=WITHIN)
    assert gamma_gamma.q == pytest.approx(3.74, rel=WITHIN)
    assert gamma_gamma.gamma == pytest.approx(15.44, rel=WITHIN)
    assert gamma_gamma.members == 946


def test_gamma_gamma_expected_spend_as_lifetimes_prints_it(gamma_gamma: GammaGamma) -> None:
    # The lifetimes README's conditional_expected_average_profit of its
    # customers 1, 2, 3 (x = 0), 6 and 9, on its inputs (zbar to the cent).
    frequency = [2, 1, 0, 7, 2]
    mean_value = [22.35, 11.77, 0.0, 73.74, 25.55]
    printed = [24.658619, 18.911489, 35.170981, 71.462843, 27.282408]
    expected = gamma_gamma_expected_spend(gamma_gamma, frequency, mean_value)
    assert expected.tolist() == pytest.approx(printed, rel=1e-4)
    assert expected[2] == gamma_gamma_mean(gamma_gamma)


def test_gamma_gamma_mean_is_the_population_mean(gamma_gamma: GammaGamma) -> None:
    p, q, gamma = gamma_gamma.p, gamma_gamma.q, gamma_gamma.gamma
    assert gamma_gamma_mean(gamma_gamma) == pytest.approx(p * gamma / (q - 1))
    with pytest.raises(ValueError, match="infinite"):
        gamma_gamma_mean(GammaGamma(p=2.0, q=0.9, gamma=10.0, log_likelihood=0.0, members=1))


def test_gamma_gamma_grouped_fit_equals_the_fit_member_by_member(
    gamma_gamma: GammaGamma, cdnow: CdnowInputs
) -> None:
    repeat = cdnow.x > 0
    rows = np.column_stack([cdnow.x[repeat], cdnow.mean_value[repeat]])
    unique, weights = np.unique(rows, axis=0, return_counts=True)
    assert weights.max() > 1
    grouped = gamma_gamma_fit(unique[:, 0], unique[:, 1], weights=weights)
    assert grouped.members == 946
    assert grouped.log_likelihood == pytest.approx(gamma_gamma.log_likelihood, abs=1e-4)
    for name in ("p", "q", "gamma"):
        assert getattr(grouped, name) == pytest.approx(getattr(gamma_gamma, name), rel=1e-4)


@pytest.mark.parametrize(
    "frequency, mean_value",
    [
        ([], []),
        ([0, 1], [0.0, 10.0]),  # members without repeat purchases are not fitted
        ([1, 2], [0.0, 10.0]),  # a zero mean has no likelihood
        ([1, 2], [-5.0, 10.0]),
        ([1], [10.0, 11.0]),
        ([1.5], [10.0]),
    ],
)
def test_gamma_gamma_refuses_bad_input(frequency, mean_value) -> None:
    with pytest.raises(ValueError):
        gamma_gamma_fit(frequency, mean_value)


# --- invariants -------------------------------------------------------------


def _log_uniform(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(np.log10(low), np.log10(high)).map(lambda e: float(10**e))


@st.composite
def members(draw: st.DrawFn) -> tuple[int, float, float]:
    T = draw(st.floats(0.0, 300.0))
    x = draw(st.integers(0, 500))
    t_x = 0.0 if x == 0 else draw(st.floats(0.0, T))
    return x, t_x, T


@settings(max_examples=300, deadline=None)
@given(
    r=_log_uniform(0.01, 10),
    alpha=_log_uniform(0.1, 300),
    a=_log_uniform(0.01, 10) | st.just(1.0),
    b=_log_uniform(0.01, 10),
    member=members(),
    t=st.floats(0.0, 520.0),
)
# Found by Hypothesis: t a hair above 0 gave -1.1e-15 expected purchases.
@example(r=1.0, alpha=1.0, a=0.1, b=10.0, member=(0, 0.0, 0.0), t=1e-16)
def test_bgnbd_predictions_are_probabilities_and_counts(r, alpha, a, b, member, t) -> None:
    model = BgNbd(r=r, alpha=alpha, a=a, b=b, log_likelihood=0.0, members=1)
    x, t_x, T = ([value] for value in member)
    p_alive = bgnbd_p_alive(model, x, t_x, T)[0]
    assert 0.0 <= p_alive <= 1.0
    expected = bgnbd_expected_purchases(model, t, x, t_x, T)[0]
    later = bgnbd_expected_purchases(model, t + 1, x, t_x, T)[0]
    assert np.isfinite(expected) and np.isfinite(later)
    assert 0.0 <= expected <= later * (1 + 1e-9) + 1e-12


@settings(max_examples=300, deadline=None)
@given(
    p=_log_uniform(0.05, 50),
    q=_log_uniform(1.01, 50),
    gamma=_log_uniform(0.01, 1e4),
    frequency=st.integers(0, 500),
    mean_value=st.floats(0.0, 1e5),
)
def test_gamma_gamma_expected_spend_lies_between_the_member_and_the_population(
    p, q, gamma, frequency, mean_value
) -> None:
    model = GammaGamma(p=p, q=q, gamma=gamma, log_likelihood=0.0, members=1)
    population = gamma_gamma_mean(model)
    expected = gamma_gamma_expected_spend(model, [frequency], [mean_value])[0]
    # A weighted mean of the two: the member's own mean counts the more the
    # more repeat purchases it rests on.
    low, high = sorted([population, mean_value if frequency else population])
    assert low * (1 - 1e-9) <= expected <= high * (1 + 1e-9)
