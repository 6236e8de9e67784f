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

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1, logsumexp

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


def _bgnbd_terms(params, x, t_x, T):
    """Per row: the log-likelihood and its gradient in (r, alpha, a, b)."""
    r, alpha, a, b = params
    repeat = x > 0
    # The x > 0 branch divides by b + x - 1; where x == 0 it is masked out.
    bx1 = np.where(repeat, b + x - 1, 1.0)
    log_t = np.log(alpha + T)
    log_tx = np.log(alpha + t_x)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * log_t
    a4 = np.where(repeat, np.log(a) - np.log(bx1) - (r + x) * log_tx, -np.inf)
    tail = logsumexp(np.stack([a3, a4]), axis=0)
    ll = a1 + a2 + tail
    # Shares of the two terms of the sum inside the log (w3 + w4 == 1).
    w4 = np.exp(a4 - tail)
    w3 = 1.0 - w4
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * log_t - w4 * log_tx
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x))
    d_common = digamma(a + b) - digamma(a + b + x)
    d_a = d_common + w4 / a
    d_b = d_common + digamma(b + x) - digamma(b) - w4 / bx1
    return ll, (d_r, d_alpha, d_a, d_b)


def bgnbd_fit(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None
) -> BgNbd:
    """Fit BG/NBD by maximum likelihood. ``weights[i]`` is how many members
    share the inputs of row i (group members by (x, t_x, T) before calling:
    the fit's cost follows the rows, not the members)."""
    xs, txs, Ts = _rfm(x, t_x, T)
    _nonempty(len(xs))
    w = _weights(weights, len(xs))
    keep = w > 0
    xs, txs, Ts, w = xs[keep], txs[keep], Ts[keep], w[keep]
    total = w.sum()

    def objective(theta):
        params = np.exp(theta)
        ll, grads = _bgnbd_terms(params, xs, txs, Ts)
        value = -np.dot(w, ll) / total
        # d/dlog(theta) = theta * d/dtheta; per member, so tolerances do not
        # depend on the club's size.
        gradient = -np.array([np.dot(w, g) for g in grads]) * params / total
        return value, gradient

    # Purchase rate r / alpha starts at the members' mean repeat rate.
    mean_rate = max(np.dot(w, xs) / max(np.dot(w, Ts), 1e-9), 1e-6)
    start = np.log([1.0, min(max(1.0 / mean_rate, 1e-4), 1e4), 1.0, 1.0])
    theta = _maximise(objective, start)
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    ll, _ = _bgnbd_terms((r, alpha, a, b), xs, txs, Ts)
    return BgNbd(
        r=r, alpha=alpha, a=a, b=b, log_likelihood=float(np.dot(w, ll)), members=int(round(total))
    )


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
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    if t == 0:
        return np.zeros_like(xs)
    z = t / (alpha + Ts + t)
    term = _discounted_hyp2f1(r + xs, b + xs, a + b + xs - 1, a, z)
    numerator = (a + b + xs - 1) / (a - 1) * (1 - term)
    return numerator * bgnbd_p_alive(model, xs, txs, Ts)


# --- Gamma-Gamma ------------------------------------------------------------


def _spend(frequency: ArrayLike, mean_value: ArrayLike):
    xs, ms = _vector("frequency", frequency), _vector("mean_value", mean_value)
    _same_length(frequency=xs, mean_value=ms)
    _counts("frequency", xs)
    if np.any(ms < 0):
        raise ValueError("mean_value must be 0 or more")
    return xs, ms


def _gamma_gamma_terms(params, x, m):
    """Per member: the log-likelihood of the mean value m of x repeat
    purchases, and its gradient in (p, q, gamma)."""
    p, q, gamma = params
    px = p * x
    log_gm = np.log(gamma + m * x)
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * log_gm
    )
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_gm)
    d_q = digamma(px + q) - digamma(q) + np.log(gamma) - log_gm
    d_gamma = q / gamma - (px + q) / (gamma + m * x)
    return ll, (d_p, d_q, d_gamma)


def gamma_gamma_fit(
    frequency: ArrayLike, mean_value: ArrayLike, weights: ArrayLike | None = None
) -> GammaGamma:
    """Fit Gamma-Gamma on the members with repeat purchases: ``frequency``
    (x > 0) and the mean value of those repeat purchases (> 0)."""
    xs, ms = _spend(frequency, mean_value)
    _nonempty(len(xs))
    if np.any(xs == 0):
        raise ValueError("frequency must be 1 or more: fit only members with repeat purchases")
    if np.any(ms == 0):
        raise ValueError("mean_value must be more than 0: leave out members who spent nothing")
    w = _weights(weights, len(xs))
    keep = w > 0
    xs, ms, w = xs[keep], ms[keep], w[keep]
    total = w.sum()

    def objective(theta):
        params = np.exp(theta)
        ll, grads = _gamma_gamma_terms(params, xs, ms)
        value = -np.dot(w, ll) / total
        gradient = -np.array([np.dot(w, g) for g in grads]) * params / total
        return value, gradient

    # q = 2 makes the population mean p * gamma / (q - 1) the members' mean.
    mean_value = float(np.dot(w, ms) / total)
    start = np.log([1.0, 2.0, mean_value])
    theta = _maximise(objective, start)
    p, q, gamma = (float(v) for v in np.exp(theta))
    ll, _ = _gamma_gamma_terms((p, q, gamma), xs, ms)
    return GammaGamma(
        p=p, q=q, gamma=gamma, log_likelihood=float(np.dot(w, ll)), members=int(round(total))
    )


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
