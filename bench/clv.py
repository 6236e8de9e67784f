"""How long the CLV fits take on a club of a million members.

    python -m bench.clv [--members 1000000] [--seed 1]

Simulates members from known BG/NBD and Gamma-Gamma parameters (CDNOW's,
in weeks): first purchases spread over three years, purchases on whole days,
repeat spend drawn per member. Then, as insights_refresh does, groups the
members by (x, t_x, T) in days and fits BG/NBD on the groups with their
counts as weights, and fits Gamma-Gamma on the members with repeat
purchases. Prints the seconds of each step, wall clock and this process's
CPU (the steadier figure on a shared machine), and the recovered parameters
beside the true ones. A measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from insights.clv import bgnbd_fit, gamma_gamma_fit

TRUE_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
TRUE_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}
DAYS = 3 * 365


def simulate(members: int, rng: np.random.Generator):
    """x, t_x and T in whole days, and each member's mean repeat spend."""
    rate = rng.gamma(TRUE_BGNBD["r"], 1 / TRUE_BGNBD["alpha"], members) / 7  # a day
    dropout = rng.beta(TRUE_BGNBD["a"], TRUE_BGNBD["b"], members)
    T = rng.integers(0, DAYS + 1, members).astype(float)
    x = np.zeros(members)
    t_x = np.zeros(members)
    now = np.zeros(members)
    active = np.ones(members, dtype=bool)
    while np.any(active):
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1 / rate[idx])
        bought = now[idx] <= T[idx]
        buyers = idx[bought]
        x[buyers] += 1
        t_x[buyers] = np.floor(now[buyers])
        # Past the end, or dropped out after this purchase: no more purchases.
        active[idx[~bought]] = False
        active[buyers[rng.random(len(buyers)) < dropout[buyers]]] = False
    nu = rng.gamma(TRUE_GAMMA_GAMMA["q"], 1 / TRUE_GAMMA_GAMMA["gamma"], members)
    repeat = x > 0
    # The mean of x Gamma(p, nu) values is Gamma(p x, nu x).
    mean_value = np.zeros(members)
    mean_value[repeat] = rng.gamma(
        TRUE_GAMMA_GAMMA["p"] * x[repeat], 1 / (nu[repeat] * x[repeat])
    ).round(2)
    mean_value[repeat] = np.maximum(mean_value[repeat], 0.01)
    return x, t_x, T, mean_value


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.2f} s (CPU {self.cpu:.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    with Stopwatch() as took:
        x, t_x, T, mean_value = simulate(args.members, rng)
    print(f"simulated {args.members:,} members: {took}")

    with Stopwatch() as took:
        rows, weights = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    print(f"grouped to {len(rows):,} rows (numpy; insights_refresh groups in SQL): {took}")

    with Stopwatch() as took:
        model = bgnbd_fit(rows[:, 0], rows[:, 1] / 7, rows[:, 2] / 7, weights=weights)
    print(f"bgnbd_fit on {len(rows):,} rows ({model.members:,} members): {took}")
    for name, true in TRUE_BGNBD.items():
        print(f"  {name:6} {getattr(model, name):8.4f}  (true {true})")

    repeat = x > 0
    with Stopwatch() as took:
        spend = gamma_gamma_fit(x[repeat], mean_value[repeat])
    print(f"gamma_gamma_fit on {int(repeat.sum()):,} members, ungrouped: {took}")
    for name, true in TRUE_GAMMA_GAMMA.items():
        print(f"  {name:6} {getattr(spend, name):8.4f}  (true {true})")


if __name__ == "__main__":
    main()
