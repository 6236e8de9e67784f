"""The CDNOW sample (tests/data/CDNOW_sample.txt, see tests/data/README.md):
read it, compute the BG/NBD and Gamma-Gamma inputs per customer, and write
it as the two import files of docs/imports.md.

Each line of the file is one purchase: customer id (in the sample), customer
id in the full set, date YYYYMMDD, number of CDs, dollar amount.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np

from integrations.imports import PURCHASE_COLUMNS

CDNOW_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "CDNOW_sample.txt"
# The calibration period of Fader, Hardie and Lee (2005): 1997-01-01 to the
# end of week 39.
CDNOW_CALIBRATION_END = date(1997, 9, 30)

MEMBER_COLUMNS = ["external_id", "market", "email", "enrolled_at"]


@dataclass(frozen=True)
class CdnowPurchase:
    customer: str
    day: date
    cds: int
    amount: Decimal


@dataclass(frozen=True)
class CdnowInputs:
    """Per customer who bought by the calibration end, in file order."""

    customers: list[str]
    x: np.ndarray  # repeat transactions (purchase days after the first)
    t_x: np.ndarray  # weeks from the first purchase to the last
    T: np.ndarray  # weeks from the first purchase to the calibration end
    mean_value: np.ndarray  # mean value of the repeat transactions (0 where x == 0)


def cdnow_purchases(path: Path = CDNOW_SAMPLE) -> list[CdnowPurchase]:
    purchases = []
    with open(path, encoding="ascii") as lines:
        for line in lines:
            if not line.strip():
                continue
            customer, _full_id, day, cds, amount = line.split()
            purchases.append(
                CdnowPurchase(
                    customer=customer,
                    day=datetime.strptime(day, "%Y%m%d").date(),
                    cds=int(cds),
                    amount=Decimal(amount),
                )
            )
    return purchases


def cdnow_inputs(as_of: date = CDNOW_CALIBRATION_END, path: Path = CDNOW_SAMPLE) -> CdnowInputs:
    """x, t_x, T (weeks: days / 7) and the mean repeat value as of the end
    of `as_of`. Purchases of one day are one transaction (their amounts
    summed), as in the published CDNOW analyses."""
    days: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for purchase in cdnow_purchases(path):
        if purchase.day <= as_of:
            days[purchase.customer][purchase.day] += purchase.amount
    customers, x, t_x, T, mean_value = [], [], [], [], []
    for customer, by_day in days.items():
        ordered = sorted(by_day)
        first, last = ordered[0], ordered[-1]
        repeats = [by_day[day] for day in ordered[1:]]
        customers.append(customer)
        x.append(len(repeats))
        t_x.append((last - first).days / 7)
        T.append((as_of - first).days / 7)
        mean_value.append(float(sum(repeats) / len(repeats)) if repeats else 0.0)
    return CdnowInputs(
        customers=customers,
        x=np.array(x, dtype=float),
        t_x=np.array(t_x),
        T=np.array(T),
        mean_value=np.array(mean_value),
    )


def cdnow_write_imports(
    members_csv: Path,
    purchases_csv: Path,
    *,
    market: str,
    store_code: str,
    currency: str,
    until: date | None = None,
    path: Path = CDNOW_SAMPLE,
) -> tuple[int, int]:
    """Write CDNOW as import files: a member per customer (enrolled on their
    first purchase day) and a line per purchase of the file (same-day
    purchases stay separate receipts), up to and including `until` when
    given. Returns (members, purchases) written."""
    purchases = [p for p in cdnow_purchases(path) if until is None or p.day <= until]
    first_day: dict[str, date] = {}
    for purchase in purchases:
        if purchase.customer not in first_day or purchase.day < first_day[purchase.customer]:
            first_day[purchase.customer] = purchase.day
    with open(members_csv, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(MEMBER_COLUMNS)
        for customer, day in first_day.items():
            writer.writerow(
                [
                    _external_id(customer),
                    market,
                    f"cdnow-{customer}@example.com",
                    day.isoformat(),
                ]
            )
    with open(purchases_csv, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(PURCHASE_COLUMNS)
        for number, purchase in enumerate(purchases, start=1):
            writer.writerow(
                [
                    _external_id(purchase.customer),
                    "",
                    store_code,
                    f"CDNOW-{number:06d}",
                    purchase.day.isoformat(),
                    currency,
                    f"{purchase.amount:.2f}",
                    "",
                ]
            )
    return len(first_day), len(purchases)


def _external_id(customer: str) -> str:
    return f"CDNOW-{customer}"
