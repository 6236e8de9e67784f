"""docs/imports.md's examples (docs/examples/*.csv) import into the demo
club as the page says, and the page shows exactly those files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.conf import settings

from loyalty.models import Purchase
from loyalty.selectors import ledger_discrepancies
from members.models import Member
from tests.helpers import run

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

DOCS = Path(settings.BASE_DIR) / "docs"


def test_the_page_shows_the_example_files() -> None:
    page = (DOCS / "imports.md").read_text(encoding="utf-8")
    for name in ("members.csv", "purchases.csv"):
        text = (DOCS / "examples" / name).read_text(encoding="utf-8")
        assert f"```csv\n{text}```" in page, name


def test_the_examples_import_into_the_demo_club(demo: None, tmp_path: Path) -> None:
    members = shutil.copy(DOCS / "examples" / "members.csv", tmp_path / "members.csv")
    purchases = shutil.copy(DOCS / "examples" / "purchases.csv", tmp_path / "purchases.csv")
    code, report = run("members", Path(members))
    assert code == 0, report
    assert [r["status"] for r in report] == ["created"] * 4
    astrid = Member.objects.get(market__code="SE", external_id="SE-10001")
    assert astrid.account.balance == 2450 and astrid.tier.code == "gold"
    assert astrid.cards.get().number == "9752123456789016"
    code, report = run("purchases", Path(purchases))
    assert code == 0, report
    assert [r["status"] for r in report] == ["created"] * 5
    assert Purchase.objects.filter(imported=True, receipt_id__startswith="OLD-").count() == 5
    assert ledger_discrepancies() == []
    # And again: nothing changes.
    assert {r["status"] for r in run("members", Path(members))[1]} == {"unchanged"}
    assert {r["status"] for r in run("purchases", Path(purchases))[1]} == {"unchanged"}
