"""The ledger is append-only: Postgres refuses UPDATE and DELETE of its rows."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from loyalty import services
from loyalty.models import LedgerEntry, LotMovement
from tests.helpers import SYSTEM, account

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def booked(make_member):
    member = make_member(points=100)
    services.points_redeem(
        actor=SYSTEM,
        member_ref={"member_number": member.member_number},
        points=40,
        store_code="SE-001",
    )
    entry = LedgerEntry.objects.filter(member=member, kind="redeem").get()
    movement = LotMovement.objects.filter(entry=entry).get()
    return member, entry, movement


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE loyalty_ledgerentry SET points = points + 1000 WHERE id = %(entry)s",
        "DELETE FROM loyalty_ledgerentry WHERE id = %(entry)s",
        "UPDATE loyalty_lotmovement SET points = 0 WHERE id = %(movement)s",
        "DELETE FROM loyalty_lotmovement WHERE id = %(movement)s",
    ],
)
def test_raw_sql_update_and_delete_are_refused(booked, sql):
    member, entry, movement = booked
    with pytest.raises(DatabaseError, match="(?i)protect|cannot|not allowed"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, {"entry": entry.pk, "movement": movement.pk})
    entry.refresh_from_db()
    assert entry.points == -40
    assert LotMovement.objects.get(pk=movement.pk).points == -40
    assert account(member) == (60, 0)


def test_orm_update_and_delete_are_refused(booked):
    _, entry, movement = booked
    with pytest.raises(DatabaseError), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(points=1)
    with pytest.raises(DatabaseError), transaction.atomic():
        LotMovement.objects.filter(pk=movement.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        entry.reference = "tampered"
        entry.save()
    assert LedgerEntry.objects.get(pk=entry.pk).reference != "tampered"
    assert LotMovement.objects.filter(pk=movement.pk).exists()


def test_inserts_are_allowed(booked):
    member, _, _ = booked
    before = LedgerEntry.objects.filter(member=member).count()
    services.points_adjust(actor=SYSTEM, member=member, points=5, reason="still appendable")
    assert LedgerEntry.objects.filter(member=member).count() == before + 1
