"""tests/insights/cdnow.py writes CDNOW as the import files of
docs/imports.md, and the real import commands take them."""

from __future__ import annotations

import csv
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db.models import Sum

from club.models import Market, Store
from loyalty.models import Purchase
from members.models import Member
from tests.helpers import run
from tests.insights.cdnow import cdnow_purchases, cdnow_write_imports

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

# CDNOW's first ten days: 226 purchases of 217 customers (a few bought twice
# on one day), enough to prove the format and quick to import.
UNTIL = date(1997, 1, 10)


@pytest.fixture
def us_store() -> Store:
    market = Market.objects.create(
        code="US",
        name="United States",
        currency="USD",
        time_zone="America/New_York",
        language="en",
        earn_rate=Decimal("1"),
        point_value=Decimal("0.01"),
    )
    return Store.objects.create(code="US-WEB", name="CDNOW", market=market)


def test_the_whole_file_becomes_one_member_per_customer_and_a_line_per_purchase(
    tmp_path: Path,
) -> None:
    members, purchases = cdnow_write_imports(
        tmp_path / "members.csv",
        tmp_path / "purchases.csv",
        market="US",
        store_code="US-WEB",
        currency="USD",
    )
    assert (members, purchases) == (2357, 6919)
    with open(tmp_path / "purchases.csv", encoding="utf-8", newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert len({line["receipt_id"] for line in lines}) == 6919
    total = sum(Decimal(line["total"]) for line in lines)
    assert total == sum(purchase.amount for purchase in cdnow_purchases())


def test_the_files_import_with_the_import_commands(us_store: Store, tmp_path: Path) -> None:
    members_csv, purchases_csv = tmp_path / "members.csv", tmp_path / "purchases.csv"
    members, purchases = cdnow_write_imports(
        members_csv, purchases_csv, market="US", store_code="US-WEB", currency="USD", until=UNTIL
    )
    in_file = [p for p in cdnow_purchases() if p.day <= UNTIL]
    assert purchases == len(in_file)
    assert members == len({p.customer for p in in_file})

    code, report = run("members", members_csv)
    assert code == 0, report[:3]
    code, report = run("purchases", purchases_csv)
    assert code == 0, report[:3]

    assert Member.objects.filter(market__code="US").count() == members
    imported = Purchase.objects.filter(store=us_store, imported=True)
    assert imported.count() == purchases
    assert imported.aggregate(total=Sum("total"))["total"] == sum(p.amount for p in in_file)
    first = Member.objects.get(market__code="US", external_id="CDNOW-00004")
    bought = Purchase.objects.get(member=first)
    assert bought.total == Decimal("29.33")
    # A date means noon in the market's time zone (docs/imports.md).
    assert bought.occurred_at == datetime(1997, 1, 1, 12, tzinfo=ZoneInfo("America/New_York"))
