"""Customer lifetime value: the BG/NBD and Gamma-Gamma models, pure numpy/scipy.

BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way")
models repeat purchases: while alive a member buys as a Poisson process of
rate lambda ~ Gamma(r, alpha); after each purchase they drop out with
probability p ~ Beta(a, b). Its inputs per member, in one time unit (the
insights app uses weeks, days / 7):

- ``x``: the number of repeat purchases (purchase days after the first),
- ``t_x``: the time from the first purchase to the last,
- ``T``: the time from the first purchase to the end of the calibration.

Gamma-Gamma (Fader, Hardie and Lee 2005, "RFM and CLV"; Fader and Hardie's
note "The Gamma-Gamma model of monetary value") models the mean value of a
member's repeat purchases, independent of their frequency.

Both are fitted by maximum likelihood on the closed-form log-likelihoods,
over log-parameters, with analytic gradients so that a fit over a million
members grouped to their unique inputs (``weights``) takes seconds. No
Django here: the insights app feeds in what its SQL aggregated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

__all__ = [
    "BgNbd",
    "GammaGamma",
    "bgnbd_expected_purchases",
    "bgnbd_fit",
    "bgnbd_p_alive",
    "gamma_gamma_expected_spend",
    "gamma_gamma_fit",
    "gamma_gamma_mean",
]

# Log-parameters stay within exp(+-LOG_BOUND): wide enough for any data in
# weeks or days, narrow enough that gammaln and powers stay finite.
LOG_BOUND = 12.0


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    members: int


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    members: int


# --- input checks -----------------------------------------------------------


def _vector(name: str, values: ArrayLike) -> NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers") from exc
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers")
    return array


def _same_length(**arrays: NDArray[np.float64]) -> int:
    lengths = {len(array) for array in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"{', '.join(arrays)} must have the same length")
    return lengths.pop()


def _counts(name: str, x: NDArray[np.float64]) -> None:
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise ValueError(f"{name} must be whole numbers of 0 or more")


def _rfm(x: ArrayLike, t_x: ArrayLike, T: ArrayLike):
    xs, txs, Ts = _vector("x", x), _vector("t_x", t_x), _vector("T", T)
    _same_length(x=xs, t_x=txs, T=Ts)
    _counts("x", xs)
    if np.any(txs < 0) or np.any(txs > Ts):
        raise ValueError("t_x must lie between 0 and T")
    if np.any((xs == 0) & (txs != 0)):
        raise ValueError("t_x must be 0 where x is 0 (no repeat purchase)")
    return xs, txs, Ts


def _weights(weights: ArrayLike | None, n: int) -> NDArray[np.float64]:
    if weights is None:
        return np.ones(n)
    w = _vector("weights", weights)
    if len(w) != n:
        raise ValueError("weights must have one number per row")
    if np.any(w < 0):
        raise ValueError("weights must be 0 or more")
    if w.sum() <= 0:
        raise ValueError("weights must not all be 0")
    return w


def _nonempty(n: int) -> None:
    if n == 0:
        raise ValueError("no members to fit: the inputs are empty")


def _maximise(objective, start: NDArray[np.float64]) -> NDArray[np.float64]:
    """Minimise a (value, gradient) objective over bounded log-parameters:
    L-BFGS-B, and a Nelder-Mead polish where its line search gave up."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds)
    if not result.success:
        result = minimize(
            lambda theta: objective(theta)[0],
            result.x,
            method="Nelder-Mead",
            bounds=bounds,
            options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 4000},
        )
    if not result.success or not np.isfinite(result.fun):
        raise ValueError(f"the fit did not converge: {result.message}")
    return result.x


# --- BG/NBD -----------------------------------------------------------------


@dataclass(frozen=True)
class _BgNbdRows:
    """The fit's inputs split once: members without a repeat purchase (their
    likelihood needs only T) and with, whose terms in x alone (gammaln,
    digamma) are computed once per distinct x, not once per row."""

    T0: NDArray  # x == 0: T
    w0: NDArray
    x: NDArray  # x > 0
    t_x: NDArray
    T: NDArray
    w: NDArray
    x_values: NDArray  # the distinct x > 0
    x_index: NDArray  # each row's place in x_values
    w_per_x: NDArray  # the weights summed per distinct x

    @classmethod
    def split(cls, x, t_x, T, w) -> _BgNbdRows:
        zero = x == 0
        repeat = ~zero
        x_values, x_index = np.unique(x[repeat], return_inverse=True)
        return cls(
            T0=T[zero],
            w0=w[zero],
            x=x[repeat],
            t_x=t_x[repeat],
            T=T[repeat],
            w=w[repeat],
            x_values=x_values,
            x_index=x_index,
            w_per_x=np.bincount(x_index, weights=w[repeat], minlength=len(x_values)),
        )


def _bgnbd_log_likelihood(params, rows: _BgNbdRows) -> tuple[float, NDArray]:
    """The weighted log-likelihood and its gradient in (r, alpha, a, b).

    Per member: A1 + A2 + log(exp(A3) + [x > 0] exp(A4)) with
    A1 = ln G(r + x) - ln G(r) + r ln alpha,
    A2 = ln G(a + b) + ln G(b + x) - ln G(b) - ln G(a + b + x),
    A3 = -(r + x) ln(alpha + T),
    A4 = ln a - ln(b + x - 1) - (r + x) ln(alpha + t_x);
    for x == 0, A1 = r ln(alpha / (alpha + T)) + A3 and A2 = 0.
    """
    r, alpha, a, b = params
    log_alpha = np.log(alpha)
    # x == 0: r ln(alpha / (alpha + T)).
    log_t0 = np.log(alpha + rows.T0)
    ll = np.dot(rows.w0, r * (log_alpha - log_t0))
    d_r = np.dot(rows.w0, log_alpha - log_t0)
    d_alpha = np.dot(rows.w0, r / alpha - r / (alpha + rows.T0))
    d_a = d_b = 0.0
    if len(rows.x):
        u, wu = rows.x_values, rows.w_per_x
        # The terms in x alone, once per distinct x.
        ll += np.dot(wu, gammaln(r + u) - gammaln(r) + r * log_alpha)
        ll += np.dot(wu, gammaln(a + b) + gammaln(b + u) - gammaln(b) - gammaln(a + b + u))
        d_r += np.dot(wu, digamma(r + u) - digamma(r) + log_alpha)
        d_alpha += wu.sum() * r / alpha
        d_common = digamma(a + b) - digamma(a + b + u)
        d_a += np.dot(wu, d_common)
        d_b += np.dot(wu, d_common + digamma(b + u) - digamma(b))
        # The two-term sum inside the log, per row, as a log-sum-exp.
        bx1 = (b + u - 1)[rows.x_index]
        r_x = r + rows.x
        log_t = np.log(alpha + rows.T)
        log_tx = np.log(alpha + rows.t_x)
        a3 = -r_x * log_t
        a4 = np.log(a) - np.log(bx1) - r_x * log_tx
        top = np.maximum(a3, a4)
        tail = top + np.log1p(np.exp(-np.abs(a3 - a4)))
        ll += np.dot(rows.w, tail)
        # Shares of the two terms (w3 + w4 == 1), weighted by the members.
        w4 = np.exp(a4 - tail)
        w3 = 1.0 - w4
        d_r -= np.dot(rows.w, w3 * log_t + w4 * log_tx)
        d_alpha -= np.dot(rows.w, r_x * (w3 / (alpha + rows.T) + w4 / (alpha + rows.t_x)))
        d_a += np.dot(rows.w, w4) / a
        d_b -= np.dot(rows.w, w4 / bx1)
    return float(ll), np.array([d_r, d_alpha, d_a, d_b])


def bgnbd_fit(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None
) -> BgNbd:
    """Fit BG/NBD by maximum likelihood. ``weights[i]`` is how many members
    share the inputs of row i (group members by (x, t_x, T) before calling:
    the fit's cost follows the rows, not the members).

    Raises ValueError for bad input (empty, mismatched, negative, t_x
    outside [0, T], ...) and when the optimiser does not converge. Data
    that cannot identify a parameter (no repeat purchase at all, a handful
    of members) gives estimates at the bounds (exp(+-12)) or left at their
    start (a == b == 1): the caller decides how many members a fit needs.
    """
    xs, txs, Ts = _rfm(x, t_x, T)
    _nonempty(len(xs))
    w = _weights(weights, len(xs))
    keep = w > 0
    rows = _BgNbdRows.split(xs[keep], txs[keep], Ts[keep], w[keep])
    total = w.sum()

    def objective(theta):
        params = np.exp(theta)
        ll, gradient = _bgnbd_log_likelihood(params, rows)
        # Per member, so that tolerances do not depend on the club's size;
        # d/dlog(theta) = theta * d/dtheta.
        return -ll / total, -gradient * params / total

    # Purchase rate r / alpha starts at the members' mean repeat rate.
    mean_rate = max(np.dot(w, xs) / max(np.dot(w, Ts), 1e-9), 1e-6)
    start = np.log([1.0, min(max(1.0 / mean_rate, 1e-4), 1e4), 1.0, 1.0])
    theta = _maximise(objective, start)
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    ll, _ = _bgnbd_log_likelihood((r, alpha, a, b), rows)
    return BgNbd(r=r, alpha=alpha, a=a, b=b, log_likelihood=ll, members=int(round(total)))


def bgnbd_p_alive(model: BgNbd, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> NDArray[np.float64]:
    """P(still alive | x, t_x, T): 1 for a member with no repeat purchase."""
    xs, txs, Ts = _rfm(x, t_x, T)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    repeat = xs > 0
    bx1 = np.where(repeat, b + xs - 1, 1.0)
    # 1 / (1 + odds of having dropped out), the odds taken in logs.
    log_odds = np.where(
        repeat,
        np.log(a) - np.log(bx1) + (r + xs) * (np.log(alpha + Ts) - np.log(alpha + txs)),
        -np.inf,
    )
    return expit(-log_odds)


def _hyp2f1_series(A: NDArray, B: NDArray, C: NDArray, z: NDArray) -> NDArray:
    """2F1(A, B; C; z) summed term by term, for 0 <= z < 1: the fallback where
    scipy's hyp2f1 gives up (it returns inf for some z > 0.9 whose series
    converges well). Sums until every row's next term is negligible."""
    total = np.ones_like(z)
    term = np.ones_like(z)
    for k in range(_SERIES_TERMS):
        term = term * (A + k) * (B + k) / ((C + k) * (k + 1)) * z
        total = total + term
        if np.all(np.abs(term) <= 1e-16 * np.abs(total)):
            return total
    return np.where(np.abs(term) <= 1e-12 * np.abs(total), total, np.nan)


# Enough for z = 0.999 (the remainder shrinks as z^k).
_SERIES_TERMS = 50_000


def _discounted_hyp2f1(r_x: NDArray, b_x: NDArray, c: NDArray, a: float, z: NDArray) -> NDArray:
    """(1 - z)^(r + x) 2F1(r + x, b + x; c; z), the hypergeometric term of
    the conditional expectation. 2F1 overflows for the large x of frequent
    buyers while its factor underflows; Euler's transformation
    2F1(A, B; C; z) = (1 - z)^(C - A - B) 2F1(C - A, C - B; C; z) leaves
    (1 - z)^(a - 1) 2F1(C - A, a - 1; C; z), both well scaled, and Pfaff's
    2F1(r + x, a - 1; C; z / (z - 1)) too. Where scipy fails at all three,
    Euler's form is summed as a series."""
    log_rest = np.log1p(-z)
    with np.errstate(all="ignore"):
        term = hyp2f1(r_x, b_x, c, z) * np.exp(r_x * log_rest)
        euler = hyp2f1(c - r_x, a - 1, c, z) * np.exp((a - 1) * log_rest)
        term = np.where(np.isfinite(term), term, euler)
        failed = ~np.isfinite(term)
        if np.any(failed):
            term[failed] = hyp2f1(r_x[failed], a - 1, c[failed], z[failed] / (z[failed] - 1))
            failed = ~np.isfinite(term)
        if np.any(failed):
            series = _hyp2f1_series(c[failed] - r_x[failed], a - 1, c[failed], z[failed])
            term[failed] = series * np.exp((a - 1) * log_rest[failed])
    return term


def bgnbd_expected_purchases(
    model: BgNbd, t: float, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """E[purchases in the next t time units | x, t_x, T] (BG/NBD eq. 10)."""
    xs, txs, Ts = _rfm(x, t_x, T)
    t = float(t)
    if not np.isfinite(t) or t < 0:
        raise ValueError("t must be a finite number of 0 or more")
    if t == 0:
        return np.zeros_like(xs)
    if abs(model.a - 1) < _A_NEAR_ONE:
        # a == 1 is a removable singularity (0 / 0), and a fit on data that
        # says nothing about dropping out stays at its start, a == 1: the
        # mean of both sides, exact to the step squared.
        below = replace(model, a=1 - _A_NEAR_ONE)
        above = replace(model, a=1 + _A_NEAR_ONE)
        return (
            _expected_purchases(below, t, xs, txs, Ts) + _expected_purchases(above, t, xs, txs, Ts)
        ) / 2
    return _expected_purchases(model, t, xs, txs, Ts)


_A_NEAR_ONE = 1e-4


def _expected_purchases(model: BgNbd, t: float, xs, txs, Ts) -> NDArray[np.float64]:
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    z = t / (alpha + Ts + t)
    term = _discounted_hyp2f1(r + xs, b + xs, a + b + xs - 1, a, z)
    numerator = (a + b + xs - 1) / (a - 1) * (1 - term)
    # For t near 0, 1 - term is a difference of near-equal numbers: rounding
    # may leave it a hair below 0 (-1e-15), and a count is never negative.
    return np.maximum(numerator * bgnbd_p_alive(model, xs, txs, Ts), 0.0)


# --- Gamma-Gamma ------------------------------------------------------------


def _spend(frequency: ArrayLike, mean_value: ArrayLike):
    xs, ms = _vector("frequency", frequency), _vector("mean_value", mean_value)
    _same_length(frequency=xs, mean_value=ms)
    _counts("frequency", xs)
    if np.any(ms < 0):
        raise ValueError("mean_value must be 0 or more")
    return xs, ms


@dataclass(frozen=True)
class _SpendRows:
    """The Gamma-Gamma fit's inputs with what no parameter changes summed
    once, and the terms in x alone computed once per distinct x."""

    x: NDArray
    m: NDArray
    w: NDArray
    x_values: NDArray
    w_per_x: NDArray
    sum_w_log_m: float
    sum_w_x_log_m: float
    sum_w_x_log_x: float

    @classmethod
    def prepare(cls, x, m, w) -> _SpendRows:
        x_values, x_index = np.unique(x, return_inverse=True)
        w_per_x = np.bincount(x_index, weights=w, minlength=len(x_values))
        log_m = np.log(m)
        return cls(
            x=x,
            m=m,
            w=w,
            x_values=x_values,
            w_per_x=w_per_x,
            sum_w_log_m=float(np.dot(w, log_m)),
            sum_w_x_log_m=float(np.dot(w * x, log_m)),
            sum_w_x_log_x=float(np.dot(w_per_x, x_values * np.log(x_values))),
        )


def _gamma_gamma_log_likelihood(params, rows: _SpendRows) -> tuple[float, NDArray]:
    """The weighted log-likelihood of the members' mean values m of their x
    repeat purchases, and its gradient in (p, q, gamma). Per member:
    ln G(px + q) - ln G(px) - ln G(q) + q ln gamma + (px - 1) ln m
    + px ln x - (px + q) ln(gamma + m x)."""
    p, q, gamma = params
    u, wu = rows.x_values, rows.w_per_x
    total = wu.sum()
    pu = p * u
    log_gm = np.log(gamma + rows.m * rows.x)
    ll = (
        np.dot(wu, gammaln(pu + q) - gammaln(pu))
        - total * gammaln(q)
        + total * q * np.log(gamma)
        + p * rows.sum_w_x_log_m
        - rows.sum_w_log_m
        + p * rows.sum_w_x_log_x
        - np.dot(rows.w, (p * rows.x + q) * log_gm)
    )
    d_p = (
        np.dot(wu, u * (digamma(pu + q) - digamma(pu)))
        + rows.sum_w_x_log_m
        + rows.sum_w_x_log_x
        - np.dot(rows.w * rows.x, log_gm)
    )
    d_q = np.dot(wu, digamma(pu + q)) - total * (digamma(q) - np.log(gamma))
    d_q -= np.dot(rows.w, log_gm)
    d_gamma = total * q / gamma - np.dot(rows.w, (p * rows.x + q) / (gamma + rows.m * rows.x))
    return float(ll), np.array([d_p, d_q, d_gamma])


def gamma_gamma_fit(
    frequency: ArrayLike, mean_value: ArrayLike, weights: ArrayLike | None = None
) -> GammaGamma:
    """Fit Gamma-Gamma on the members with repeat purchases: ``frequency``
    (x > 0) and the mean value of those repeat purchases (> 0), ``weights``
    as for bgnbd_fit. Raises ValueError for bad input and when the
    optimiser does not converge."""
    xs, ms = _spend(frequency, mean_value)
    _nonempty(len(xs))
    if np.any(xs == 0):
        raise ValueError("frequency must be 1 or more: fit only members with repeat purchases")
    if np.any(ms == 0):
        raise ValueError("mean_value must be more than 0: leave out members who spent nothing")
    w = _weights(weights, len(xs))
    keep = w > 0
    rows = _SpendRows.prepare(xs[keep], ms[keep], w[keep])
    total = w.sum()

    def objective(theta):
        params = np.exp(theta)
        ll, gradient = _gamma_gamma_log_likelihood(params, rows)
        return -ll / total, -gradient * params / total

    # q = 2 makes the population mean p * gamma / (q - 1) the members' mean.
    mean_value = float(np.dot(w, ms) / total)
    start = np.log([1.0, 2.0, mean_value])
    theta = _maximise(objective, start)
    p, q, gamma = (float(v) for v in np.exp(theta))
    ll, _ = _gamma_gamma_log_likelihood((p, q, gamma), rows)
    return GammaGamma(p=p, q=q, gamma=gamma, log_likelihood=ll, members=int(round(total)))


def gamma_gamma_mean(model: GammaGamma) -> float:
    """The population's mean purchase value, p * gamma / (q - 1): the
    expectation for a member with no repeat purchase."""
    if model.q <= 1:
        raise ValueError("the population mean value is infinite (q <= 1)")
    return model.p * model.gamma / (model.q - 1)


def gamma_gamma_expected_spend(
    model: GammaGamma, frequency: ArrayLike, mean_value: ArrayLike
) -> NDArray[np.float64]:
    """E[value of a purchase | x, mean value]: the member's mean shrunk toward
    the population's, the more the fewer their purchases. x == 0 gives the
    population mean (their mean_value is ignored)."""
    xs, ms = _spend(frequency, mean_value)
    p, q, gamma = model.p, model.q, model.gamma
    if np.any(xs == 0):
        gamma_gamma_mean(model)  # raises when the population mean is infinite
    px = p * xs
    if np.any(px + q <= 1):
        raise ValueError("the expected value is infinite for these inputs (p x + q <= 1)")
    return p * (gamma + ms * xs) / (px + q - 1)
