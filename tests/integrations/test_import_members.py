"""`manage.py import_members`: every column and rule of docs/imports.md."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from club.dates import today_for
from club.models import Market, Tier
from loyalty.ledger import expiry_for
from loyalty.models import LedgerEntry, Lot, TierChange
from loyalty.selectors import ledger_discrepancies
from members.models import Card, ConsentChange, Member
from tests.helpers import MEMBER_HEADER, by_line, counts, run, write_csv

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def row(external_id: str, **fields: Any) -> dict[str, Any]:
    base = {"external_id": external_id, "market": "SE", "email": f"{external_id}@old.test"}
    base.update(fields)
    return base


def members_file(tmp_path: Path, rows: list[dict[str, Any]], name: str = "members.csv") -> Path:
    return write_csv(tmp_path / name, MEMBER_HEADER, rows)


def member(external_id: str, market: str = "SE") -> Member:
    return Member.objects.get(market__code=market, external_id=external_id)


def test_every_column_is_imported(demo: None, tmp_path: Path) -> None:
    path = members_file(
        tmp_path,
        [
            row(
                "OLD-1",
                email="anna@old.test",
                phone="070-123 45 67",
                first_name="Anna",
                last_name="Berg",
                birth_date="1980-02-29",
                language="en",
                enrolled_at="2019-05-04T08:30:00+00:00",
                card="9752000000000001",
                points="1200",
                points_expire_on="2030-01-31",
                tier="gold",
                marketing_email="true",
                marketing_sms="FALSE",
                profiling="true",
            )
        ],
    )
    code, report = run("members", path)
    assert code == 0
    anna = member("OLD-1")
    assert report == [
        {
            "line": "2",
            "external_id": "OLD-1",
            "member_number": anna.member_number,
            "status": "created",
            "error": "",
        }
    ]
    assert (anna.email, anna.phone, anna.first_name, anna.last_name) == (
        "anna@old.test",
        "+46701234567",
        "Anna",
        "Berg",
    )
    assert anna.birth_date == date(1980, 2, 29)
    assert anna.language == "en"
    assert anna.enrolled_at == datetime(2019, 5, 4, 8, 30, tzinfo=ZoneInfo("UTC"))
    assert anna.status == Member.Status.ACTIVE
    assert list(anna.cards.values_list("number", flat=True)) == ["9752000000000001"]
    assert (anna.marketing_email, anna.marketing_sms, anna.profiling) == (True, False, True)
    assert anna.consents_updated_at is not None
    history = set(
        ConsentChange.objects.filter(member=anna).values_list("consent", "granted", "source")
    )
    assert history == {
        ("marketing_email", True, "import"),
        ("marketing_sms", False, "import"),
        ("profiling", True, "import"),
    }
    # The tier, kept 12 months from the import, and its history.
    market = Market.objects.get(code="SE")
    today = today_for(market)
    assert anna.tier.code == "gold"
    leap_day = (today.month, today.day) == (2, 29)
    assert anna.tier_valid_until == date(today.year + 1, today.month, 28 if leap_day else today.day)
    change = TierChange.objects.get(member=anna)
    assert (change.cause, change.to_tier.code, change.valid_until) == (
        "import",
        "gold",
        anna.tier_valid_until,
    )
    # The opening balance: one adjust entry, its matured lot, available at once.
    entry = LedgerEntry.objects.get(member=anna)
    assert (entry.kind, entry.points, entry.reason, entry.expires_on) == (
        "adjust",
        1200,
        "import",
        date(2030, 1, 31),
    )
    lot = Lot.objects.get(entry=entry)
    assert (lot.points, lot.remaining, lot.matured, lot.expires_on) == (
        1200,
        1200,
        True,
        date(2030, 1, 31),
    )
    assert (anna.account.balance, anna.account.pending) == (1200, 0)
    assert ledger_discrepancies() == []


def test_defaults(demo: None, tmp_path: Path) -> None:
    before = timezone.now()
    path = members_file(tmp_path, [row("OLD-2", email=None, phone="+4799887766", market="no")])
    code, report = run("members", path)
    assert code == 0, report
    bo = member("OLD-2", "NO")
    market = Market.objects.get(code="NO")
    assert bo.email is None and bo.phone == "+4799887766"
    assert bo.language == market.language
    assert bo.enrolled_at >= before
    assert bo.tier == Tier.objects.order_by("rank").first()
    assert bo.tier_valid_until is None
    assert not TierChange.objects.filter(member=bo).exists()
    assert (bo.marketing_email, bo.marketing_sms, bo.profiling) == (False, False, False)
    assert bo.consents_updated_at is None
    assert not ConsentChange.objects.filter(member=bo).exists()
    card = Card.objects.get(member=bo)
    assert card.number.startswith("9752") and len(card.number) == 16
    assert report[0]["member_number"] == bo.member_number
    # No points: an empty account, no entry.
    assert (bo.account.balance, bo.account.pending) == (0, 0)
    assert not LedgerEntry.objects.filter(member=bo).exists()


def test_points_expire_by_default_after_the_markets_validity(demo: None, tmp_path: Path) -> None:
    path = members_file(tmp_path, [row("OLD-3", market="DK", points="50")])
    assert run("members", path)[0] == 0
    market = Market.objects.get(code="DK")
    lot = Lot.objects.get(member=member("OLD-3", "DK"))
    assert lot.expires_on == expiry_for(market, today_for(market))
    assert lot.matured and lot.remaining == 50
    assert ledger_discrepancies() == []


def test_enrolled_at_as_a_date_means_noon_in_the_markets_time_zone(
    demo: None, tmp_path: Path
) -> None:
    path = members_file(
        tmp_path,
        [
            row("OLD-4", market="FI", enrolled_at="2020-06-01"),
            row("OLD-5", enrolled_at="2020-06-01 09:15"),
        ],
    )
    assert run("members", path)[0] == 0
    helsinki = ZoneInfo(Market.objects.get(code="FI").time_zone)
    stockholm = ZoneInfo(Market.objects.get(code="SE").time_zone)
    assert member("OLD-4", "FI").enrolled_at == datetime.combine(
        date(2020, 6, 1), time(12), helsinki
    )
    assert member("OLD-5").enrolled_at == datetime(2020, 6, 1, 9, 15, tzinfo=stockholm)


BAD_ROWS = [
    (row("", email="x@old.test"), "external_id is required"),
    (row("B-1", market=""), "market is required"),
    (row("B-2", market="XX"), "unknown market XX"),
    (row("B-3", email=""), "email or phone is required"),
    (row("B-4", email="not-an-email"), "email: not a valid email address"),
    (row("B-5", phone="12"), "phone: not a valid phone number"),
    (row("B-6", birth_date="1980-02-30"), "birth_date: not a date (YYYY-MM-DD): 1980-02-30"),
    (row("B-7", birth_date="03/04/1980"), "birth_date: not a date (YYYY-MM-DD): 03/04/1980"),
    (
        row("B-8", enrolled_at="yesterday"),
        "enrolled_at: not an ISO date or date and time: yesterday",
    ),
    (row("B-9", enrolled_at="2999-01-01"), "enrolled_at lies in the future"),
    (row("B-10", points="12.5"), "points: not a whole number of 0 or more: 12.5"),
    (row("B-11", points="-3"), "points: not a whole number of 0 or more: -3"),
    (
        row("B-12", points_expire_on="2031-13-01"),
        "points_expire_on: not a date (YYYY-MM-DD): 2031-13-01",
    ),
    (row("B-13", points="10", points_expire_on="2001-01-31"), "points_expire_on lies in the past"),
    (row("B-14", tier="platinum"), "unknown tier platinum"),
    (row("B-15", marketing_email="yes"), "marketing_email: true or false, not yes"),
    (row("B-16", marketing_sms="1"), "marketing_sms: true or false, not 1"),
    (row("B-17", profiling="maybe"), "profiling: true or false, not maybe"),
    (row("B-18", first_name="x" * 101), "first_name: longer than 100 characters"),
    (row("B-19", card="9752999999999999"), "card 9752999999999999 belongs to another member"),
]


def test_each_bad_row_fails_with_its_reason_while_the_others_import(
    demo: None, tmp_path: Path, make_member: Any
) -> None:
    taken = make_member()
    Card.objects.filter(member=taken).update(number="9752999999999999")
    rows = []
    for index, (bad, _) in enumerate(BAD_ROWS):
        rows.append(row(f"GOOD-{index}", points="10"))
        rows.append(bad)
    path = members_file(tmp_path, rows)
    code, report = run("members", path)
    assert code == 1
    lines = by_line(report)
    assert len(report) == len(rows)
    for index, (bad, error) in enumerate(BAD_ROWS):
        good_line, bad_line = 2 + 2 * index, 3 + 2 * index
        assert lines[good_line]["status"] == "created", lines[good_line]
        assert lines[bad_line] == {
            "line": str(bad_line),
            "external_id": bad["external_id"],
            "member_number": "",
            "status": "failed",
            "error": error,
        }
    assert Member.objects.filter(external_id__startswith="GOOD-").count() == len(BAD_ROWS)
    assert not Member.objects.filter(external_id__startswith="B-").exists()
    assert ledger_discrepancies() == []


def test_duplicates_in_the_file_keep_the_first_line(demo: None, tmp_path: Path) -> None:
    path = members_file(
        tmp_path,
        [
            row("D-1"),
            row("D-1", email="other@old.test"),
            row("D-1", market="NO"),
            row("D-2", card="9752000000000019"),
            row("D-3", card="9752000000000019"),
        ],
    )
    code, report = run("members", path, "--chunk-size", "2")  # across chunks as well
    assert code == 1
    lines = by_line(report)
    assert lines[2]["status"] == "created"
    assert lines[3]["error"] == "duplicate external_id D-1 in the file (line 2)"
    assert lines[4]["status"] == "created"  # another market: another member
    assert lines[5]["status"] == "created"
    assert lines[6]["status"] == "failed" and "9752000000000019" in lines[6]["error"]
    assert member("D-1").email == "D-1@old.test"


def test_a_row_with_too_many_or_too_few_fields_fails(demo: None, tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text(
        "external_id,market,email\nR-1,SE,r1@old.test\nR-2,SE\nR-3,SE,r3@old.test,x\n",
        encoding="utf-8",
    )
    code, report = run("members", path)
    assert code == 1
    assert [(r["line"], r["status"], r["error"]) for r in report] == [
        ("2", "created", ""),
        ("3", "failed", "expected 3 fields, found 2"),
        ("4", "failed", "expected 3 fields, found 4"),
    ]


def test_line_numbers_count_quoted_newlines(demo: None, tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text(
        'external_id,market,email,last_name\nQ-1,SE,q1@old.test,"two\nlines"\nQ-2,SE,,\n',
        encoding="utf-8",
    )
    code, report = run("members", path)
    assert [(r["line"], r["status"]) for r in report] == [("2", "created"), ("4", "failed")]
    assert member("Q-1").last_name == "two\nlines"


@pytest.mark.parametrize(
    "text, message",
    [
        ("external_id,market,emial\n", "Unknown column(s): emial"),
        ("market,email\n", "Missing column(s): external_id"),
        ("", "The file is empty"),
    ],
)
def test_a_file_with_a_bad_header_is_refused(
    demo: None, tmp_path: Path, text: str, message: str
) -> None:
    from django.core.management import CommandError, call_command

    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("import_members", str(path))


def test_the_same_file_twice_changes_nothing(demo: None, tmp_path: Path) -> None:
    path = members_file(
        tmp_path,
        [
            row(f"T-{i}", points=str(i * 10), tier="silver", marketing_email="true")
            for i in range(1, 6)
        ],
    )
    assert run("members", path)[0] == 0
    before = counts()
    code, report = run("members", path)
    assert code == 0
    assert {r["status"] for r in report} == {"unchanged"}
    assert [r["member_number"] for r in report] == [
        member(f"T-{i}").member_number for i in range(1, 6)
    ]
    assert counts() == before
    assert ledger_discrepancies() == []


def test_the_dry_run_changes_nothing(demo: None, tmp_path: Path) -> None:
    path = members_file(
        tmp_path,
        [
            row("DRY-1", points="100", tier="gold", marketing_sms="true"),
            row("DRY-2", market="XX"),
            row("DRY-1"),
        ],
    )
    before = counts()
    code, report = run("members", path, "--dry-run")
    assert code == 1
    assert [r["status"] for r in report] == ["created", "failed", "failed"]
    assert counts() == before
    # And the real run answers the same.
    code, real = run("members", path)
    assert [r["status"] for r in real] == ["created", "failed", "failed"]


def test_exit_code_0_and_a_summary_when_all_rows_pass(
    demo: None, tmp_path: Path, capsys: Any
) -> None:
    from django.core.management import call_command

    path = members_file(tmp_path, [row("S-1"), row("S-2")])
    call_command("import_members", str(path))
    assert "2 rows: 2 created, 0 unchanged, 0 failed." in capsys.readouterr().out


def test_the_admin_finds_a_member_by_external_id(
    demo: None, tmp_path: Path, admin_client: Any
) -> None:
    assert run("members", members_file(tmp_path, [row("FIND-ME-42", last_name="Findable")]))[0] == 0
    found = member("FIND-ME-42")
    answer = admin_client.get("/admin/members/member/", {"q": "FIND-ME-42"})
    assert answer.status_code == 200
    assert found.member_number in answer.content.decode()
    assert answer.context["cl"].result_count == 1
    answer = admin_client.get(f"/admin/members/member/{found.pk}/change/")
    assert "FIND-ME-42" in answer.content.decode()


def test_many_members_in_chunks_balance_the_ledger(demo: None, tmp_path: Path) -> None:
    rows = [
        row(f"M-{i}", points=str(i), market=["SE", "NO", "DK", "FI"][i % 4]) for i in range(250)
    ]
    code, report = run("members", members_file(tmp_path, rows), "--chunk-size", "40")
    assert code == 0
    assert len(report) == 250 and {r["status"] for r in report} == {"created"}
    assert Member.objects.filter(external_id__startswith="M-").count() == 250
    assert ledger_discrepancies() == []
    assert len({r["member_number"] for r in report}) == 250


def test_sqlite_is_refused_with_a_clear_message(
    demo: None, tmp_path: Path, monkeypatch: Any
) -> None:
    from django.core.management import CommandError, call_command
    from django.db import connection

    path = members_file(tmp_path, [row("SQ-1")])
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(CommandError, match="Imports need PostgreSQL"):
        call_command("import_members", str(path))
    monkeypatch.undo()
    assert not Member.objects.filter(external_id="SQ-1").exists()
