"""`manage.py import_purchases`: purchases as history (docs/imports.md)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from club.models import Market, Store
from loyalty.models import LedgerEntry, Purchase, QualifyingMonth
from loyalty.selectors import ledger_discrepancies
from members.models import Member
from tests.helpers import PURCHASE_HEADER, by_line, counts, run, write_csv

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def old_members(make_member: Any) -> dict[str, Member]:
    """Two members as an import left them: SE with external id OLD-1, NO with OLD-1 too."""
    se = make_member("SE")
    no = make_member("NO")
    Member.objects.filter(pk=se.pk).update(external_id="OLD-1")
    Member.objects.filter(pk=no.pk).update(external_id="OLD-1")
    se.refresh_from_db()
    no.refresh_from_db()
    return {"SE": se, "NO": no}


def prow(receipt_id: str, **fields: Any) -> dict[str, Any]:
    base = {
        "member_external_id": "OLD-1",
        "store_code": "SE-001",
        "receipt_id": receipt_id,
        "occurred_at": "2021-03-04T10:00:00+01:00",
        "currency": "SEK",
        "total": "199.50",
    }
    base.update(fields)
    return base


def purchases_file(tmp_path: Path, rows: list[dict[str, Any]], name: str = "purchases.csv") -> Path:
    return write_csv(tmp_path / name, PURCHASE_HEADER, rows)


def test_every_column_is_imported_as_history(
    old_members: dict[str, Member], tmp_path: Path
) -> None:
    se = old_members["SE"]
    before_entries = LedgerEntry.objects.count()
    before_months = QualifyingMonth.objects.count()
    path = purchases_file(
        tmp_path,
        [
            prow("R-1", category="tools"),
            prow(
                "R-2",
                member_external_id="",
                member_number=se.member_number,
                store_code="SE-WEB",
                occurred_at="2020-12-24",
                total="0",
            ),
            prow(
                "R-3",
                store_code="NO-001",
                currency="NOK",
                total="10",
                occurred_at="2019-01-01 18:00",
            ),
        ],
    )
    code, report = run("purchases", path)
    assert code == 0, report
    assert [(r["receipt_id"], r["member_number"], r["status"]) for r in report] == [
        ("R-1", se.member_number, "created"),
        ("R-2", se.member_number, "created"),
        ("R-3", old_members["NO"].member_number, "created"),
    ]
    first = Purchase.objects.get(receipt_id="R-1")
    assert first.member == se and first.store.code == "SE-001"
    assert first.occurred_at == datetime(2021, 3, 4, 9, tzinfo=ZoneInfo("UTC"))
    assert (first.currency, first.total, first.qualifying_amount) == (
        "SEK",
        Decimal("199.50"),
        Decimal("199.50"),
    )
    assert first.lines == [{"sku": "", "category": "tools", "quantity": 1, "amount": "199.50"}]
    assert (first.points_earned, first.base_points, first.imported) == (0, 0, True)
    assert first.channel == "store"
    web = Purchase.objects.get(receipt_id="R-2")
    stockholm = ZoneInfo(Market.objects.get(code="SE").time_zone)
    assert web.occurred_at == datetime.combine(date(2020, 12, 24), time(12), stockholm)
    assert web.channel == Store.objects.get(code="SE-WEB").channel
    assert web.total == 0 and web.lines == []
    oslo = ZoneInfo(Market.objects.get(code="NO").time_zone)
    assert Purchase.objects.get(receipt_id="R-3").occurred_at == datetime(
        2019, 1, 1, 18, tzinfo=oslo
    )
    # History: no points, no qualifying points.
    assert LedgerEntry.objects.count() == before_entries
    assert QualifyingMonth.objects.count() == before_months
    assert ledger_discrepancies() == []


def test_an_excluded_category_qualifies_for_nothing(
    old_members: dict[str, Member], tmp_path: Path
) -> None:
    market = Market.objects.get(code="SE")
    market.excluded_categories = ["gift-cards"]
    market.save()
    assert run("purchases", purchases_file(tmp_path, [prow("X-1", category="gift-cards")]))[0] == 0
    assert Purchase.objects.get(receipt_id="X-1").qualifying_amount == 0


def test_the_90_day_limit_does_not_apply(old_members: dict[str, Member], tmp_path: Path) -> None:
    long_ago = (timezone.now() - timedelta(days=3000)).isoformat()
    assert run("purchases", purchases_file(tmp_path, [prow("OLD", occurred_at=long_ago)]))[0] == 0


BAD_ROWS = [
    (
        prow(
            "",
        ),
        "receipt_id is required",
    ),
    (prow("B-1", store_code=""), "store_code is required"),
    (prow("B-2", store_code="XX-9"), "unknown store XX-9"),
    (prow("B-3", member_external_id=""), "member_external_id or member_number is required"),
    (prow("B-4", member_external_id="NOBODY"), "unknown member_external_id NOBODY in market SE"),
    (
        prow("B-5", member_external_id="", member_number="1999999999"),
        "unknown member_number 1999999999",
    ),
    (
        prow("B-6", member_external_id="", member_number="{NO}", store_code="SE-001"),
        "store SE-001 is not in the member's market",
    ),
    (prow("B-7", member_number="{NO}"), "member_number {NO} is not member_external_id OLD-1"),
    (prow("B-8", occurred_at=""), "occurred_at is required"),
    (
        prow("B-9", occurred_at="2021-02-29"),
        "occurred_at: not an ISO date or date and time: 2021-02-29",
    ),
    (
        prow("B-10", occurred_at="4/3/2021"),
        "occurred_at: not an ISO date or date and time: 4/3/2021",
    ),
    (prow("B-11", occurred_at="2999-01-01T00:00:00Z"), "occurred_at lies in the future"),
    (prow("B-12", currency=""), "currency is required"),
    (prow("B-13", currency="NOK"), "currency NOK is not the market's (SEK)"),
    (prow("B-14", total=""), "total is required"),
    (prow("B-15", total="-5"), "total: not an amount of 0 or more (at most 2 decimals): -5"),
    (prow("B-16", total="12,50"), "total: not an amount of 0 or more (at most 2 decimals): 12,50"),
    (prow("B-17", total="1.005"), "total: not an amount of 0 or more (at most 2 decimals): 1.005"),
    (prow("r" * 65), "receipt_id: longer than 64 characters"),
]


def test_each_bad_row_fails_with_its_reason_while_the_others_import(
    old_members: dict[str, Member], tmp_path: Path
) -> None:
    no_number = old_members["NO"].member_number
    rows = []
    for index, (bad, _) in enumerate(BAD_ROWS):
        rows.append(prow(f"GOOD-{index}"))
        rows.append(
            {k: (v.replace("{NO}", no_number) if isinstance(v, str) else v) for k, v in bad.items()}
        )
    code, report = run("purchases", purchases_file(tmp_path, rows))
    assert code == 1
    lines = by_line(report)
    assert len(report) == len(rows)
    for index, (bad, error) in enumerate(BAD_ROWS):
        good_line, bad_line = 2 + 2 * index, 3 + 2 * index
        assert lines[good_line]["status"] == "created", lines[good_line]
        assert lines[bad_line]["status"] == "failed"
        assert lines[bad_line]["error"] == error.replace("{NO}", no_number), lines[bad_line]
        assert lines[bad_line]["receipt_id"] == bad["receipt_id"]
    assert Purchase.objects.filter(receipt_id__startswith="GOOD-").count() == len(BAD_ROWS)
    assert not Purchase.objects.filter(receipt_id__startswith="B-").exists()


def test_a_receipt_again_is_unchanged_with_the_same_body_and_failed_with_another(
    old_members: dict[str, Member], tmp_path: Path
) -> None:
    path = purchases_file(
        tmp_path,
        [
            prow("D-1"),
            prow("D-1"),
            prow("D-1", total="1.00"),
            prow("D-1", store_code="SE-002"),  # another store: another receipt
        ],
    )
    code, report = run("purchases", path, "--chunk-size", "2")
    assert code == 1
    lines = by_line(report)
    assert [lines[n]["status"] for n in (2, 3, 4, 5)] == [
        "created",
        "unchanged",
        "failed",
        "created",
    ]
    assert lines[4]["error"] == "duplicate receipt with another body"
    assert Purchase.objects.filter(receipt_id="D-1").count() == 2


def test_a_receipt_twice_in_a_chunk_keeps_its_first_line_in_any_chunk(
    make_member: Any, tmp_path: Path
) -> None:
    # The first line's member is the later one: purchases go in in their
    # members' order, so without the chunk's own check the second line
    # would take the receipt. The first chunk has no receipt twice.
    earlier, later = make_member("SE"), make_member("SE")
    Member.objects.filter(pk=earlier.pk).update(external_id="EARLY")
    Member.objects.filter(pk=later.pk).update(external_id="LATE")
    path = purchases_file(
        tmp_path,
        [
            prow("C-1", member_external_id="LATE"),
            prow("C-2", member_external_id="EARLY"),
            prow("C-3", member_external_id="LATE"),
            prow("C-3", member_external_id="EARLY"),
        ],
    )
    code, report = run("purchases", path, "--chunk-size", "2")
    assert code == 1
    lines = by_line(report)
    assert [lines[n]["status"] for n in (2, 3, 4, 5)] == ["created", "created", "created", "failed"]
    assert lines[5]["error"] == "duplicate receipt with another body"
    assert Purchase.objects.get(receipt_id="C-3").member_id == later.pk


def test_a_receipt_booked_live_is_not_overwritten(
    old_members: dict[str, Member], tmp_path: Path, api: Any
) -> None:
    from tests.helpers import purchase_body

    se = old_members["SE"]
    assert api.post(
        "/api/v1/purchases", purchase_body(se.member_number, "LIVE-1"), format="json"
    ).status_code in (200, 201)
    code, report = run("purchases", purchases_file(tmp_path, [prow("LIVE-1")]))
    assert code == 1 and report[0]["error"] == "duplicate receipt with another body"
    assert not Purchase.objects.get(receipt_id="LIVE-1").imported


def test_the_same_file_twice_changes_nothing(
    old_members: dict[str, Member], tmp_path: Path
) -> None:
    path = purchases_file(tmp_path, [prow(f"T-{i}", total=f"{i}.50") for i in range(20)])
    assert run("purchases", path)[0] == 0
    before = counts()
    code, report = run("purchases", path, "--chunk-size", "7")
    assert code == 0
    assert {r["status"] for r in report} == {"unchanged"}
    assert counts() == before


def test_the_dry_run_changes_nothing(old_members: dict[str, Member], tmp_path: Path) -> None:
    path = purchases_file(
        tmp_path, [prow("DRY-1"), prow("DRY-1", total="2"), prow("DRY-2", currency="EUR")]
    )
    before = counts()
    code, report = run("purchases", path, "--dry-run", "--chunk-size", "1")
    assert code == 1
    assert [r["status"] for r in report] == ["created", "failed", "failed"]
    assert counts() == before


STOCKHOLM = "Europe/Stockholm"


@pytest.mark.parametrize(
    "occurred_at, expected",
    [
        ("2021-03-04T10:00", datetime(2021, 3, 4, 10, tzinfo=ZoneInfo(STOCKHOLM))),
        ("2021-03-04 10:00:59", datetime(2021, 3, 4, 10, 0, 59, tzinfo=ZoneInfo(STOCKHOLM))),
        (
            "2021-03-04T10:00:00.123456Z",
            datetime(2021, 3, 4, 10, 0, 0, 123456, tzinfo=ZoneInfo("UTC")),
        ),
        ("2021-03-04T23:59:00+01", datetime(2021, 3, 4, 22, 59, tzinfo=ZoneInfo("UTC"))),
        ("2021-03-04T10:00:00-0130", datetime(2021, 3, 4, 11, 30, tzinfo=ZoneInfo("UTC"))),
        ("2021-03-04T10:00:00+05:30", datetime(2021, 3, 4, 4, 30, tzinfo=ZoneInfo("UTC"))),
        ("2020-02-29", datetime(2020, 2, 29, 12, tzinfo=ZoneInfo(STOCKHOLM))),
        ("2000-02-29", datetime(2000, 2, 29, 12, tzinfo=ZoneInfo(STOCKHOLM))),
        ("2021-12-31", datetime(2021, 12, 31, 12, tzinfo=ZoneInfo(STOCKHOLM))),
        ("2021-03-04T24:00", None),
        ("2021-03-04T10:60", None),
        ("2021-03-04T10:00:60", None),
        ("2021-03-04T10:00:00+24:00", None),
        ("2021-03-04T10:00:00+01:60", None),
        ("2021-03-04T10:00:00+0160", None),
        ("2100-02-29", None),
        ("2021-04-31", None),
        ("2021-00-10", None),
        ("0000-01-01", None),
        ("2021-3-4", None),
        ("2021-03-04T10", None),
        ("2021-03-04T10:00:00.1234567", None),
        ("2021-03-04t10:00", None),
        ("2021-03-04T10:00z", None),
        ("\u0662\u0660\u0662\u0661-03-04", None),
    ],
)
def test_occurred_at_is_an_iso_date_or_date_and_time(
    old_members: dict[str, Member], tmp_path: Path, occurred_at: str, expected: datetime | None
) -> None:
    assert Market.objects.get(code="SE").time_zone == STOCKHOLM
    code, report = run(
        "purchases", purchases_file(tmp_path, [prow("T-1", occurred_at=occurred_at)])
    )
    if expected is None:
        assert report[0]["error"] == f"occurred_at: not an ISO date or date and time: {occurred_at}"
    else:
        assert code == 0, report
        assert Purchase.objects.get(receipt_id="T-1").occurred_at == expected


@pytest.mark.parametrize(
    "total, expected",
    [("0", "0.00"), ("10", "10.00"), ("10.5", "10.50"), ("1234567890.12", "1234567890.12")]
    + [(bad, None) for bad in ("12345678901", ".5", "5.", "+5", "1e3", "\u0665", "1 0")],
)
def test_total_is_an_amount_of_ascii_digits(
    old_members: dict[str, Member], tmp_path: Path, total: str, expected: str | None
) -> None:
    code, report = run("purchases", purchases_file(tmp_path, [prow("T-2", total=total)]))
    if expected is None:
        assert report[0]["error"] == (
            f"total: not an amount of 0 or more (at most 2 decimals): {total}"
        )
    else:
        assert code == 0, report
        assert Purchase.objects.get(receipt_id="T-2").total == Decimal(expected)
