"""Experiment statistics: the figures of `GET /api/v1/experiments/{code}/results`.

Pure (numpy and scipy, no Django): it works on per-variant sums that SQL
has already aggregated (n, sum and sum of squares of the members' metric),
as GrowthBook's frequentist engine does, and it is checked against that
engine's published test vectors (tests/campaigns/test_stats.py).

- variance = (sum_squares - sum^2 / n) / (n - 1);
- absolute effect mean_b - mean_a: Welch's t-test, Welch-Satterthwaite
  degrees of freedom, two-sided, 95 %;
- relative effect mean_b / mean_a - 1 with the delta-method variance
  var_b / (n_b mean_a^2) + var_a mean_b^2 / (n_a mean_a^4), same degrees
  of freedom;
- the sequential interval: the always-valid interval for the relative
  effect (Waudby-Smith et al. 2023, eq. 9), with GrowthBook's choice of rho
  from a tuning parameter (the expected total sample size, 5000);
- SRM: the chi-square test of members per variant against the weights.

Degenerate input never raises and never yields NaN or infinity (the answer
is JSON): a figure that is not defined is None (null).

- a variant without members has no mean (None), so its effects are None;
- relative effect None when the baseline mean is 0;
- intervals and p-values None unless both variants have at least two
  members and a positive variance (as GrowthBook, which refuses zero
  variance: a t-test against a spread of 0 would claim certainty it has
  not). A variance that is 0 up to the rounding of the sums counts as 0;
- no sequential interval, no decision: `inconclusive` (or `invalid`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import stats as scipy_stats

ALPHA = 0.05  # two-sided 95 %
SRM_ALPHA = 0.001  # below it the split is broken and no decision is given
SEQUENTIAL_TUNING = 5000.0

# sum_squares - sum^2/n cancels: a centred sum this small beside
# sum_squares is rounding, not spread (float sums from SQL carry ~n eps).
_CANCELLATION = 1e-10

DECISIONS = ("better", "worse", "inconclusive", "invalid")


@dataclass(frozen=True)
class VariantSums:
    """One variant's members (n) and the sum and sum of squares of their
    metric. Decimal sums (Postgres numeric) are taken as floats."""

    code: str
    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        n, total, squares = int(self.n), float(self.sum), float(self.sum_squares)
        if n != self.n or n < 0:
            raise ValueError(f"variant {self.code!r}: n must be a count, not {self.n!r}")
        if not (math.isfinite(total) and math.isfinite(squares)) or squares < 0:
            raise ValueError(f"variant {self.code!r}: sums must be finite, sum_squares >= 0")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sum", total)
        object.__setattr__(self, "sum_squares", squares)

    @property
    def mean(self) -> float | None:
        """None without members."""
        return self.sum / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """Sample variance (n - 1); None below two members; 0.0 when the
        centred sum is rounding or negative (sums no data can have)."""
        if self.n < 2:
            return None
        centred = self.sum_squares - self.sum * self.sum / self.n
        if centred <= _CANCELLATION * self.sum_squares:
            return 0.0
        return centred / (self.n - 1)


@dataclass(frozen=True)
class Estimate:
    """An effect with its 95 % interval and two-sided p-value; None where
    not defined (see the module's docstring)."""

    effect: float | None
    ci95: tuple[float, float] | None
    p_value: float | None


@dataclass(frozen=True)
class Comparison:
    variant: str
    baseline: str
    absolute: Estimate
    relative: Estimate
    sequential_ci95: tuple[float, float] | None
    decision: str  # one of DECISIONS


def srm_p_value(members: Sequence[int], weights: Sequence[float]) -> float:
    """Chi-square goodness of fit of the members per variant to the weights'
    shares. Variants of weight 0 are left out (as GrowthBook); with fewer
    than two weighted variants, or no members, there is nothing to test: 1.0."""
    if len(members) != len(weights):
        raise ValueError("members and weights must have one entry per variant")
    if any(m < 0 for m in members) or any(not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError("members and weights must not be negative")
    weighted = [(m, w) for m, w in zip(members, weights) if w > 0]
    observed = np.array([m for m, _ in weighted], dtype=float)
    shares = np.array([w for _, w in weighted], dtype=float)
    total = observed.sum()
    if len(weighted) < 2 or total == 0:
        return 1.0
    expected = shares / shares.sum() * total
    with np.errstate(all="ignore"):
        # a share so small its expectation underflows to 0: any member there
        # is an infinite misfit, none is no misfit
        misfit = np.where(
            expected > 0, (observed - expected) ** 2 / expected, np.where(observed > 0, np.inf, 0)
        )
    chi_square = float(misfit.sum())
    p = float(scipy_stats.chi2.sf(chi_square, len(weighted) - 1))
    return min(max(p, 0.0), 1.0)


def compare(
    baseline: VariantSums,
    variant: VariantSums,
    *,
    srm_ok: bool,
    sequential_tuning: float = SEQUENTIAL_TUNING,
) -> Comparison:
    """The variant against the baseline: absolute and relative effects, the
    sequential interval of the relative effect, and the decision."""
    if not sequential_tuning > 0:
        raise ValueError("sequential_tuning must be positive")
    mean_a, mean_b = baseline.mean, variant.mean
    var_a, var_b = baseline.variance, variant.variance
    n_a, n_b = baseline.n, variant.n

    absolute_effect = None if mean_a is None or mean_b is None else mean_b - mean_a
    relative_effect = None
    if mean_a is not None and mean_b is not None and mean_a != 0:
        relative_effect = _finite(mean_b / mean_a - 1)

    # None (n < 2) and 0.0 variances are not testable
    df = _welch_df(var_a, n_a, var_b, n_b) if var_a and var_b else None
    if df is None:
        return Comparison(
            variant=variant.code,
            baseline=baseline.code,
            absolute=Estimate(absolute_effect, None, None),
            relative=Estimate(relative_effect, None, None),
            sequential_ci95=None,
            decision="inconclusive" if srm_ok else "invalid",
        )

    absolute = _t_estimate(absolute_effect, math.sqrt(var_a / n_a + var_b / n_b), df)
    relative = Estimate(relative_effect, None, None)
    sequential = None
    if relative_effect is not None:
        relative_variance = _relative_variance(mean_a, var_a, n_a, mean_b, var_b, n_b)
        if relative_variance is not None:
            relative = _t_estimate(relative_effect, math.sqrt(relative_variance), df)
            halfwidth = _sequential_halfwidth(
                relative_variance * (n_a + n_b), n_a + n_b, sequential_tuning
            )
            if halfwidth is not None:
                sequential = (relative_effect - halfwidth, relative_effect + halfwidth)

    if not srm_ok:
        decision = "invalid"
    elif sequential is not None and sequential[0] > 0:
        decision = "better"
    elif sequential is not None and sequential[1] < 0:
        decision = "worse"
    else:
        decision = "inconclusive"
    return Comparison(
        variant=variant.code,
        baseline=baseline.code,
        absolute=absolute,
        relative=relative,
        sequential_ci95=sequential,
        decision=decision,
    )


def results(variants: Sequence[VariantSums], weights: Sequence[float]) -> dict:
    """The results answer less code, metric and status: the first variant is
    the baseline; figures are not rounded."""
    if not variants:
        raise ValueError("an experiment has at least one variant")
    if len(variants) != len(weights):
        raise ValueError("variants and weights must have one entry per variant")
    p_value = srm_p_value([v.n for v in variants], weights)
    srm_ok = p_value >= SRM_ALPHA
    baseline = variants[0]
    comparisons = [compare(baseline, variant, srm_ok=srm_ok) for variant in variants[1:]]
    return {
        "srm": {"p_value": p_value, "ok": srm_ok},
        "variants": [
            {
                "code": v.code,
                "members": v.n,
                "sum": v.sum,
                "sum_squares": v.sum_squares,
                "mean": v.mean,
            }
            for v in variants
        ],
        "comparisons": [
            {
                "variant": c.variant,
                "baseline": c.baseline,
                "absolute": _estimate_json(c.absolute),
                "relative": _estimate_json(c.relative),
                "sequential": {"ci95": _interval_json(c.sequential_ci95)},
                "decision": c.decision,
            }
            for c in comparisons
        ],
    }


def variant_for(
    experiment_code: str, member_number: str, variants: Sequence[tuple[str, float]]
) -> str:
    """The member's variant: SHA-256 of "code:number" read as a big-endian
    integer over 2^256, against the variants' cumulative weight shares in
    their order. Compared exactly (fractions), so no share boundary moves
    with float rounding."""
    if not variants:
        raise ValueError("an experiment has at least one variant")
    weights = [Fraction(weight) for _, weight in variants]
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("weights must not be negative and must not all be 0")
    digest = hashlib.sha256(f"{experiment_code}:{member_number}".encode()).digest()
    bucket = Fraction(int.from_bytes(digest, "big"), 2**256)
    total = sum(weights)
    cumulative = Fraction(0)
    for (code, _), weight in zip(variants, weights):
        cumulative += weight
        if bucket < cumulative / total:
            return code
    raise AssertionError("unreachable: bucket < 1 and the last share is 1")


# --- internals


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float | None:
    """Welch-Satterthwaite degrees of freedom; None when the squares of
    vanishing variances underflow."""
    with np.errstate(all="ignore"):
        se2_a, se2_b = np.float64(var_a) / n_a, np.float64(var_b) / n_b
        df = (se2_a + se2_b) ** 2 / (se2_a**2 / (n_a - 1) + se2_b**2 / (n_b - 1))
    return float(df) if np.isfinite(df) and df > 0 else None


def _relative_variance(
    mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int
) -> float | None:
    """Delta method for mean_b / mean_a, written over mean_a^2 once so a
    small baseline mean overflows to None rather than raising."""
    with np.errstate(all="ignore"):
        ratio = np.float64(mean_b) / np.float64(mean_a)
        variance = (var_b / n_b + var_a * ratio * ratio / n_a) / (np.float64(mean_a) ** 2)
    return float(variance) if np.isfinite(variance) and variance > 0 else None


def _t_estimate(effect: float | None, standard_error: float, df: float) -> Estimate:
    if effect is None or not (math.isfinite(standard_error) and standard_error > 0):
        return Estimate(effect, None, None)
    quantile = float(scipy_stats.t.ppf(1 - ALPHA / 2, df))
    halfwidth = quantile * standard_error
    # sf, not 1 - cdf: keeps small p-values instead of rounding them to 0
    p_value = float(2 * scipy_stats.t.sf(abs(effect) / standard_error, df))
    low, high = effect - halfwidth, effect + halfwidth
    if not (math.isfinite(low) and math.isfinite(high) and math.isfinite(p_value)):
        return Estimate(effect, None, None)
    return Estimate(effect, (low, high), min(p_value, 1.0))


def _sequential_rho(tuning: float) -> float:
    """GrowthBook's rho for a two-sided interval: the one that makes the
    interval tightest at a total sample size of `tuning`
    (Waudby-Smith et al., arXiv 2103.06476v7, eq. 161)."""
    log_term = -2 * math.log(ALPHA)
    return math.sqrt((log_term + math.log(log_term + 1)) / tuning)


def _sequential_halfwidth(s2: float, n: int, tuning: float) -> float | None:
    """Eq. 9 of Waudby-Smith et al. (arXiv 2103.06476v7): the asymptotic
    confidence sequence's half-width, s2 the per-unit variance of the effect
    (its variance times n, the members of both variants)."""
    rho2 = _sequential_rho(tuning) ** 2
    n_rho2 = n * rho2
    width = math.sqrt(s2) * math.sqrt(
        2 * (n_rho2 + 1) * math.log(math.sqrt(n_rho2 + 1) / ALPHA) / (n * n_rho2)
    )
    return width if math.isfinite(width) else None


def _estimate_json(estimate: Estimate) -> dict:
    return {
        "effect": estimate.effect,
        "ci95": _interval_json(estimate.ci95),
        "p_value": estimate.p_value,
    }


def _interval_json(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]
