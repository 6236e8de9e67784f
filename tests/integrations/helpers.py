"""Running the import commands in tests: a CSV written from rows, the
command called, its report read back."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from django.core.management import call_command

from club.models import Tier
from core.models import OutboxEvent
from loyalty.models import (
    LedgerEntry,
    Lot,
    LotMovement,
    PointsAccount,
    Purchase,
    QualifyingMonth,
    TierChange,
)
from members.models import Card, ConsentChange, Member

MEMBER_HEADER = ["external_id", "market", "email", "phone", "first_name", "last_name",
                 "birth_date", "language", "enrolled_at", "card", "points", "points_expire_on",
                 "tier", "marketing_email", "marketing_sms", "profiling"]
PURCHASE_HEADER = ["member_external_id", "member_number", "store_code", "receipt_id",
                   "occurred_at", "currency", "total", "category"]


def write_csv(path: Path, header: list[str], rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: ("" if value is None else value) for key, value in row.items()})
    return path


def run(kind: str, path: Path, *args: str) -> tuple[int, list[dict[str, str]]]:
    """(exit code, report lines as dicts)."""
    report = path.with_suffix(".report.csv")
    code = 0
    try:
        call_command(f"import_{kind}", str(path), "--report", str(report), *args)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    with open(report, encoding="utf-8", newline="") as handle:
        return code, list(csv.DictReader(handle))


def by_line(report: list[dict[str, str]]) -> dict[int, dict[str, str]]:
    return {int(row["line"]): row for row in report}


TOUCHED = [Member, Card, ConsentChange, PointsAccount, LedgerEntry, Lot, LotMovement, TierChange,
           Purchase, QualifyingMonth, OutboxEvent, Tier]


def counts() -> dict[str, int]:
    """Rows of every table an import touches (and some it must not)."""
    return {model.__name__: model.objects.count() for model in TOUCHED}
