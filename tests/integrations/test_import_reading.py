"""How the imports read a file: plain lines go to the server's CSV parser,
the others (quoted, ragged, blank, a NUL, a lone carriage return) to
Python's csv module, from the same place; line numbers, values and errors
are the same either way, and the checks done in SQL agree with Python's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.core.validators import validate_email
from django.db import connection

from integrations import imports
from members.models import Card, Member
from members.numbers import CARD_LENGTH, CARD_PREFIX, luhn_valid, member_number_for
from tests.helpers import MEMBER_HEADER, by_line, run, write_csv

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

HEAD = "external_id,market,email,last_name\n"


def write(tmp_path: Path, content: str | bytes, name: str = "members.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def member(external_id: str) -> Member:
    return Member.objects.get(market__code="SE", external_id=external_id)


def lines(report: list[dict[str, str]]) -> list[tuple[int, str, str]]:
    return [(int(r["line"]), r["status"], r["error"]) for r in report]


def test_windows_line_endings(demo: None, tmp_path: Path) -> None:
    text = HEAD + "W-1,SE,w1@old.test,One\nW-2,SE,,Two\nW-3,SE,w3@old.test,Three\n"
    code, report = run("members", write(tmp_path, text.replace("\n", "\r\n")))
    assert code == 1
    assert lines(report) == [
        (2, "created", ""),
        (3, "failed", "email or phone is required"),
        (4, "created", ""),
    ]
    assert member("W-3").last_name == "Three"


def test_whitespace_around_values_is_trimmed_as_by_python(demo: None, tmp_path: Path) -> None:
    text = HEAD + "\tT-1 ,\u00a0se ,t1@old.test\u3000, Berg \u2003\n"
    code, report = run("members", write(tmp_path, text))
    assert code == 0, report
    found = member("T-1")
    assert (found.email, found.last_name) == ("t1@old.test", "Berg")


def test_a_value_of_whitespace_only_is_empty_and_inner_whitespace_stays(
    demo: None, tmp_path: Path
) -> None:
    text = HEAD + "E-1,SE, \u2003\x1c ,Empty\nE-2,SE,e2@old.test,\u00a0Inner \u2003 Space\x85\n"
    code, report = run("members", write(tmp_path, text))
    assert lines(report) == [(2, "failed", "email or phone is required"), (3, "created", "")]
    assert code == 1
    assert member("E-2").last_name == "Inner \u2003 Space"


def test_purchases_find_their_member_and_store_by_trimmed_values(
    demo: None, tmp_path: Path
) -> None:
    """The lookups join the staging columns trimmed in place (the server's
    CSV parser keeps the whitespace)."""
    code, _ = run("members", write(tmp_path, HEAD + "B-1,SE,b1@old.test,Buyer\n"))
    assert code == 0
    text = (
        "member_external_id,store_code,receipt_id,occurred_at,currency,total\n"
        "\u3000B-1 , SE-001\t,OLD-R-1 ,2024-05-17, SEK,12.50\u2028\n"
        "B-2,SE-001,OLD-R-2,2024-05-17,SEK,1.00\n"
    )
    code, report = run("purchases", write(tmp_path, text, "purchases.csv"))
    assert [(r["line"], r["receipt_id"], r["status"], r["error"]) for r in report] == [
        ("2", "OLD-R-1", "created", ""),
        ("3", "OLD-R-2", "failed", "unknown member_external_id B-2 in market SE"),
    ]
    bought = member("B-1").purchases.get()
    assert (bought.receipt_id, bought.store.code, str(bought.total)) == (
        "OLD-R-1",
        "SE-001",
        "12.50",
    )


ODD_FILE = (
    HEAD
    + "P-1,SE,p1@old.test,A\n"  # line 2
    + 'P-2,SE,p2@old.test,"B, quoted"\n'  # 3
    + 'P-3,SE,p3@old.test,"two\nlines"\n'  # 4-5
    + "P-4,SE,p4@old.test,D\n"  # 6
    + "P-5,SE,p5@old.test,E\n"  # 7
    + "P-6,SE,p6@old.test,F\n"  # 8
    + "P-7,SE\n"  # 9
    + "\n"  # 10
    + "P-8,SE,p8@old.test,H\n"  # 11
    + "P-9,SE,p9\x00@old.test,I\n"  # 12
    + "\\.\n"  # 13: the end of COPY's data for the server
    + "P-10,SE,p10@old.test,J\n"  # 14
)
ODD_REPORT = [
    (2, "created", ""),
    (3, "created", ""),
    (4, "created", ""),
    (6, "created", ""),
    (7, "created", ""),
    (8, "created", ""),
    (9, "failed", "expected 4 fields, found 2"),
    (11, "created", ""),
    (12, "failed", "email: contains a NUL character"),
    (13, "failed", "expected 4 fields, found 1"),
    (14, "created", ""),
]


@pytest.mark.parametrize("chunk_size", ["3", "1000"])
def test_odd_lines_among_plain_ones_keep_their_line_numbers(
    demo: None, tmp_path: Path, chunk_size: str
) -> None:
    code, report = run("members", write(tmp_path, ODD_FILE), "--chunk-size", chunk_size)
    assert code == 1
    assert lines(report) == ODD_REPORT
    assert member("P-2").last_name == "B, quoted"
    assert member("P-3").last_name == "two\nlines"
    assert member("P-10").last_name == "J"


def test_a_lone_carriage_return_ends_a_line_as_for_python(demo: None, tmp_path: Path) -> None:
    text = HEAD + "L-1,SE,l1@old.test,A\rL-2,SE,l2@old.test,B\nL-3,SE,,C\n"
    code, report = run("members", write(tmp_path, text), "--chunk-size", "1")
    assert lines(report) == [
        (2, "created", ""),
        (3, "created", ""),
        (4, "failed", "email or phone is required"),
    ]
    assert code == 1 and member("L-2").last_name == "B"


def test_a_file_that_is_not_utf8_is_refused(demo: None, tmp_path: Path) -> None:
    path = write(tmp_path, HEAD.encode() + b"U-1,SE,u1@old.test,M\xfcller\n")
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("import_members", str(path))
    assert not Member.objects.filter(external_id="U-1").exists()


def test_member_and_card_numbers_drawn_in_sql_are_valid(demo: None, tmp_path: Path) -> None:
    rows = [{"external_id": f"N-{i}", "market": "SE", "email": f"n{i}@old.test"} for i in range(30)]
    code, report = run("members", write_csv(tmp_path / "n.csv", MEMBER_HEADER, rows))
    assert code == 0
    for line in report:
        found = member(line["external_id"])
        assert found.member_number == member_number_for(found.pk) == line["member_number"]
        (card,) = Card.objects.filter(member=found)
        assert card.number.startswith(CARD_PREFIX) and len(card.number) == CARD_LENGTH
        assert luhn_valid(card.number), card.number
    assert (
        len(
            set(
                Card.objects.filter(member__external_id__startswith="N-").values_list(
                    "number", flat=True
                )
            )
        )
        == 30
    )


def test_a_drawn_card_number_taken_is_drawn_again_for_its_member_only(
    make_member: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Draws made predictable: the numbers from an existing card's on, in
    # turn, so that one new member draws that card's number.
    existing = Card.objects.get(member=make_member("SE"))
    payload = int(existing.number[:-1])
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP SEQUENCE test_card_draw START {payload}")
    monkeypatch.setattr(imports, "_CARD_DRAW_SQL", "nextval('test_card_draw')")
    rows = [{"external_id": f"K-{i}", "market": "SE", "email": f"k{i}@old.test"} for i in range(3)]
    code, _ = run("members", write_csv(tmp_path / "k.csv", MEMBER_HEADER, rows))
    assert code == 0
    # One card each (a member drawn again twice would have two).
    numbers = [Card.objects.get(member=member(f"K-{i}")).number for i in range(3)]
    assert all(luhn_valid(number) for number in numbers), numbers
    assert sorted(int(number[:-1]) - payload for number in numbers) == [1, 2, 3]
    assert Card.objects.get(number=existing.number).member_id == existing.member_id


def test_card_numbers_never_free_stop_the_chunk(
    make_member: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = Card.objects.get(member=make_member("SE"))
    monkeypatch.setattr(imports, "_CARD_DRAW_SQL", existing.number[:-1])
    rows = [{"external_id": "F-1", "market": "SE", "email": "f1@old.test"}]
    with pytest.raises(RuntimeError, match="could not draw free card numbers"):
        run("members", write_csv(tmp_path / "f.csv", MEMBER_HEADER, rows))
    assert not Member.objects.filter(external_id="F-1").exists()


def django_accepts(email: str) -> bool:
    try:
        validate_email(email)
    except ValidationError:
        return False
    return True


EMAILS = [
    "user+tag@sub.example.co",
    "o'brien@example.com",
    "x@localhost",
    "x@xn--bcher-kva.example",
    "first.last@例え.jp",
    "a@b.c",
    "a..b@example.com",
    "a@-example.com",
    "a@example-.com",
    "a@example",
    "a b@example.com",
    "a@example.c0m",
    "a@" + "x" * 64 + ".com",
    "a@" + "x" * 60 + ".com",
    '"quoted"@example.com',
]


@pytest.mark.parametrize("email", EMAILS)
def test_emails_are_checked_as_django_checks_them(demo: None, tmp_path: Path, email: str) -> None:
    rows: list[dict[str, Any]] = [{"external_id": "E-1", "market": "SE", "email": email}]
    code, report = run("members", write_csv(tmp_path / "e.csv", MEMBER_HEADER, rows))
    expected = "created" if django_accepts(email) else "failed"
    assert report[0]["status"] == expected, report
    if expected == "failed":
        assert report[0]["error"] == "email: not a valid email address"


@pytest.mark.parametrize(
    "points, ok",
    [("0", True), ("999999999", True), ("007", True), ("1000000000", False), ("+5", False)]
    + [("\u0665", False), ("1 000", False)],
)
def test_points_are_whole_numbers_of_ascii_digits(
    demo: None, tmp_path: Path, points: str, ok: bool
) -> None:
    rows = [{"external_id": "PT-1", "market": "SE", "email": "pt@old.test", "points": points}]
    code, report = run("members", write_csv(tmp_path / "p.csv", MEMBER_HEADER, rows))
    lines_ = by_line(report)
    if ok:
        assert lines_[2]["status"] == "created", report
        assert member("PT-1").account.balance == int(points)
    else:
        assert lines_[2]["error"] == f"points: not a whole number of 0 or more: {points}"
