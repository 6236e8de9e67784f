"""Fixtures and helpers the welcome-journey and gift tests share.

The test settings switch the journey's counting off (the other suites count
points exactly); `journey_on` switches it on for a test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from core.actors import Actor, system_actor
from core.auth import Client
from loyalty.models import LedgerEntry
from loyalty.selectors import ledger_discrepancies
from checkout.services import purchase_record, return_record
from loyalty.services import Line
from members.models import Member
from journeys.services import journey_forget
from journeys.models import MemberMission

SYSTEM = system_actor("tests")
STOCKHOLM = ZoneInfo("Europe/Stockholm")


@pytest.fixture
def journey_on(settings: Any, demo: None) -> Iterator[None]:
    """The demo club with its welcome journey counting purchases and events."""
    settings.LOJAL_JOURNEY_ENABLED = True
    journey_forget()
    yield
    journey_forget()


def assert_ledger_consistent() -> None:
    found = ledger_discrepancies()
    assert found == [], [str(d) for d in found]


def enrol_at(member: Member, moment: datetime) -> Member:
    """Move the member's enrolment (auto_now_add) to `moment`."""
    Member.objects.filter(pk=member.pk).update(enrolled_at=moment)
    member.refresh_from_db()
    return member


def local(day: date, hour: int, minute: int = 0, tz: ZoneInfo = STOCKHOLM) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def buy(member: Member, amount: str = "100.00", *, store: str = "SE-001", channel: str = "store",
        category: str = "tools", occurred_at: datetime | None = None,
        receipt: str | None = None, lines: list[Line] | None = None) -> dict[str, Any]:
    """Book a purchase through the service, as the API does."""
    member.refresh_from_db()
    lines = lines or [Line(sku="SKU-1", amount=Decimal(amount), category=category)]
    body, _ = purchase_record(
        actor=SYSTEM, member_ref={"member_number": member.member_number}, store_code=store,
        receipt_id=receipt or f"R-{uuid.uuid4().hex[:12]}", channel=channel,
        occurred_at=occurred_at or timezone.now() - timedelta(minutes=1),
        currency="SEK", total=sum((line.amount for line in lines), Decimal(0)), lines=lines,
    )
    return body


def give_back(purchase: dict[str, Any], amount: str, *, store: str = "SE-001",
              sku: str = "SKU-1") -> dict[str, Any]:
    """Book a return of `amount` of the purchase's `sku`."""
    body, _ = return_record(
        actor=SYSTEM, store_code=store, receipt_id=f"RET-{uuid.uuid4().hex[:12]}",
        original_store_code=store, original_receipt_id=purchase["receipt_id"],
        occurred_at=timezone.now() - timedelta(seconds=30), currency="SEK",
        total=Decimal(amount), lines=[Line(sku=sku, amount=Decimal(amount))],
    )
    return body


def mission_row(member: Member, code: str) -> MemberMission | None:
    return MemberMission.objects.filter(member=member, mission__code=code).first()


def bonus_entries(member: Member, reference: str) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(member=member, kind="bonus", reference=reference))
