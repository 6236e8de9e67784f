"""The points jobs at their edges: maturing, expiry, holds, notices.

Times are chosen around the Stockholm market's midnight (UTC+1 in winter):
a lot is spendable through its expiry date, local time.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from checkout.services import purchase_record, return_record
from core.models import OutboxEvent
from loyalty import lifecycle
from loyalty.models import LedgerEntry, Lot, PointsAccount, Redemption
from loyalty.selectors import ledger_discrepancies
from loyalty.services import Line, points_redeem

UTC = UTC
EARNED = datetime(
    2026, 1, 10, 12, 0, tzinfo=UTC
)  # SE: pending until 2026-02-09, expires 2028-01-31


def earn(client, member, receipt, amount="100.00", when=EARNED):
    body, _ = purchase_record(
        actor=client,
        member_ref={"member_number": member.member_number},
        store_code="SE-001",
        receipt_id=receipt,
        channel="store",
        occurred_at=when,
        currency="SEK",
        total=Decimal(amount),
        lines=[Line(sku="X", amount=Decimal(amount), category="tools")],
        now=when,
    )
    return body


def account(member):
    return PointsAccount.objects.get(member=member)


def assert_ledger_holds():
    assert ledger_discrepancies() == []


@pytest.fixture
def pending_member(make_member, system_client):
    member = make_member()
    earn(system_client, member, "R-1")
    return member


@pytest.mark.django_db
class TestMature:
    def test_the_day_before_local_midnight_nothing_matures(self, pending_member):
        # 2026-02-08 23:30 in Stockholm
        result = lifecycle.points_mature(as_of=datetime(2026, 2, 8, 22, 30, tzinfo=UTC))
        assert result.rows == 0
        assert (account(pending_member).balance, account(pending_member).pending) == (0, 100)

    def test_on_the_day_local_time_points_become_available(self, pending_member):
        # 2026-02-09 00:30 in Stockholm, still the 8th in UTC
        result = lifecycle.points_mature(as_of=datetime(2026, 2, 8, 23, 30, tzinfo=UTC))
        assert result.rows == 1
        assert (account(pending_member).balance, account(pending_member).pending) == (100, 0)
        assert_ledger_holds()

    def test_a_second_run_changes_nothing(self, pending_member):
        as_of = datetime(2026, 3, 1, tzinfo=UTC)
        lifecycle.points_mature(as_of=as_of)
        assert lifecycle.points_mature(as_of=as_of).rows == 0
        assert account(pending_member).balance == 100

    def test_maturing_points_pay_back_a_debt_first(self, make_member, system_client):
        member = make_member(points=0)
        earn(system_client, member, "R-1", when=EARNED)
        earn(system_client, member, "R-2", amount="300.00", when=EARNED)
        lifecycle.points_mature(as_of=datetime(2026, 2, 10, tzinfo=UTC))
        later = EARNED + timedelta(days=31)
        points_redeem(
            actor=system_client,
            member_ref={"member_number": member.member_number},
            points=400,
            store_code="SE-001",
            now=later,
        )
        earn(system_client, member, "R-3", amount="50.00", when=later)  # pending 50
        return_record(
            actor=system_client,
            store_code="SE-001",
            receipt_id="RET-2",
            original_store_code="SE-001",
            original_receipt_id="R-2",
            occurred_at=later,
            currency="SEK",
            total=Decimal("300.00"),
            lines=[Line(sku="X", amount=Decimal("300.00"))],
            now=later,
        )
        assert (account(member).balance, account(member).pending) == (-300, 50)
        lifecycle.points_mature(as_of=later + timedelta(days=31))
        assert (account(member).balance, account(member).pending) == (-250, 0)
        assert Lot.objects.get(purchase__receipt_id="R-3").remaining == 0
        assert_ledger_holds()


@pytest.fixture
def matured_member(pending_member):
    lifecycle.points_mature(as_of=datetime(2026, 2, 10, tzinfo=UTC))
    return pending_member


LAST_LOCAL_MINUTE = datetime(2028, 1, 31, 22, 59, tzinfo=UTC)  # 23:59 on the 31st in Stockholm
FIRST_LOCAL_MINUTE = datetime(2028, 1, 31, 23, 0, 1, tzinfo=UTC)  # 00:00 on Feb 1st


@pytest.mark.django_db
class TestExpire:
    def test_lot_is_spendable_through_its_last_local_day(self, matured_member, system_client):
        assert lifecycle.points_expire(as_of=LAST_LOCAL_MINUTE).rows == 0
        body = points_redeem(
            actor=system_client,
            member_ref={"member_number": matured_member.member_number},
            points=10,
            store_code="SE-001",
            now=LAST_LOCAL_MINUTE,
        )
        assert body["member"]["points"]["balance"] == 90

    def test_after_local_midnight_the_remaining_points_expire_once(self, matured_member):
        result = lifecycle.points_expire(as_of=FIRST_LOCAL_MINUTE)
        assert result.rows == 1
        entry = LedgerEntry.objects.get(member=matured_member, kind="expire")
        assert entry.points == -100 and entry.expires_on == date(2028, 1, 31)
        assert account(matured_member).balance == 0
        assert lifecycle.points_expire(as_of=FIRST_LOCAL_MINUTE + timedelta(days=1)).rows == 0
        assert LedgerEntry.objects.filter(member=matured_member, kind="expire").count() == 1
        assert_ledger_holds()

    def test_spent_points_do_not_expire_again(self, matured_member, system_client):
        points_redeem(
            actor=system_client,
            member_ref={"member_number": matured_member.member_number},
            points=30,
            store_code="SE-001",
            now=LAST_LOCAL_MINUTE,
        )
        lifecycle.points_expire(as_of=FIRST_LOCAL_MINUTE)
        assert LedgerEntry.objects.get(member=matured_member, kind="expire").points == -70
        assert account(matured_member).balance == 0
        assert_ledger_holds()

    def test_a_run_stopped_after_some_batches_resumes_and_expires_each_lot_once(
        self, make_member, system_client
    ):
        members = [make_member() for _ in range(6)]
        for index, member in enumerate(members):
            for n in range(3):
                earn(system_client, member, f"R-{index}-{n}", amount="10.00")
        lifecycle.points_mature(as_of=datetime(2026, 2, 10, tzinfo=UTC))
        first = lifecycle.points_expire(as_of=FIRST_LOCAL_MINUTE, batch_size=4, max_batches=2)
        assert first.rows == 8
        assert_ledger_holds()
        second = lifecycle.points_expire(as_of=FIRST_LOCAL_MINUTE, batch_size=4)
        assert second.rows == 10
        per_lot = {}
        for reference in LedgerEntry.objects.filter(kind="expire").values_list(
            "reference", flat=True
        ):
            per_lot[reference] = per_lot.get(reference, 0) + 1
        assert len(per_lot) == 18 and set(per_lot.values()) == {1}
        assert all(account(m).balance == 0 for m in members)
        assert_ledger_holds()

    def test_the_per_member_path_books_the_same_as_the_set_based_one(
        self, make_member, system_client
    ):
        a, b = make_member(), make_member()
        for member in (a, b):
            earn(system_client, member, f"R-{member.pk}", amount="40.00")
        lifecycle.points_mature(as_of=datetime(2026, 2, 10, tzinfo=UTC))
        lifecycle.points_expire(as_of=FIRST_LOCAL_MINUTE, sql=False)
        for member in (a, b):
            entry = LedgerEntry.objects.get(member=member, kind="expire")
            assert entry.points == -40
        assert_ledger_holds()

    def test_command_takes_as_of(self, matured_member, capsys):
        call_command("points_expire", "--as-of", "2028-02-01T00:00:01+01:00")
        assert "points_expire: 1 rows" in capsys.readouterr().out
        assert account(matured_member).balance == 0


def _in_threads(*targets):
    errors = []

    def wrap(target):
        def run():
            try:
                target()
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
class TestConcurrentExpiry:
    def test_two_runs_at_once_expire_each_lot_once(self, make_member, system_client):
        members = [make_member() for _ in range(10)]
        for member in members:
            for n in range(4):
                earn(system_client, member, f"R-{member.pk}-{n}", amount="5.00")
        lifecycle.points_mature(as_of=datetime(2026, 2, 10, tzinfo=UTC))
        results = []
        errors = _in_threads(
            *[
                lambda: results.append(
                    lifecycle.points_expire(as_of=FIRST_LOCAL_MINUTE, batch_size=7)
                )
                for _ in range(2)
            ]
        )
        assert errors == []
        assert sum(r.rows for r in results) >= 40
        assert LedgerEntry.objects.filter(kind="expire").count() == 40
        assert (
            LedgerEntry.objects.filter(kind="expire").values("reference").distinct().count() == 40
        )
        assert all(account(m).balance == 0 for m in members)
        assert_ledger_holds()

    def test_a_redemption_racing_the_expiry_of_its_lot_spends_or_expires_never_both(
        self, make_member, system_client
    ):
        for attempt in range(5):
            member = make_member()
            earn(system_client, member, f"R-race-{attempt}", amount="100.00")
            lifecycle.points_mature(as_of=datetime(2026, 2, 10, tzinfo=UTC))
            outcome = {}

            def redeem(member=member, outcome=outcome):  # this attempt's, bound now
                try:
                    points_redeem(
                        actor=system_client,
                        member_ref={"member_number": member.member_number},
                        points=60,
                        store_code="SE-001",
                        now=LAST_LOCAL_MINUTE,
                    )
                    outcome["redeemed"] = True
                except Exception as exc:
                    outcome["redeemed"] = type(exc).__name__

            errors = _in_threads(redeem, lambda: lifecycle.points_expire(as_of=FIRST_LOCAL_MINUTE))
            assert errors == []
            entries = {
                k: sum(e.points for e in LedgerEntry.objects.filter(member=member, kind=k))
                for k in ("earn", "redeem", "expire")
            }
            if outcome["redeemed"] is True:
                assert entries == {"earn": 100, "redeem": -60, "expire": -40}
            else:
                # The expiry came first: nothing left to spend.
                assert outcome["redeemed"] == "InsufficientPoints"
                assert entries == {"earn": 100, "redeem": 0, "expire": -100}
            assert account(member).balance == 0
            assert_ledger_holds()


@pytest.mark.django_db
class TestHolds:
    def test_an_expired_hold_is_released_once_and_cannot_be_captured(
        self, matured_member, system_client, api
    ):
        now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        hold = points_redeem(
            actor=system_client,
            member_ref={"member_number": matured_member.member_number},
            points=40,
            store_code="SE-001",
            capture=False,
            now=now,
        )
        assert lifecycle.holds_release(as_of=now + timedelta(minutes=14)).rows == 0
        assert account(matured_member).balance == 60
        assert lifecycle.holds_release(as_of=now + timedelta(minutes=15)).rows == 1
        assert account(matured_member).balance == 100
        assert Redemption.objects.get(pk=hold["redemption_id"]).status == "expired"
        assert lifecycle.holds_release(as_of=now + timedelta(hours=1)).rows == 0
        response = api.post(f"/api/v1/redemptions/{hold['redemption_id']}/capture")
        assert response.status_code == 409 and response.json()["code"] == "hold_expired"
        assert account(matured_member).balance == 100
        assert_ledger_holds()


@pytest.mark.django_db
class TestExpiryNotices:
    def test_one_notice_per_lot_within_thirty_days_never_two(self, make_member, system_client):
        soon, later = make_member(), make_member()
        earn(system_client, soon, "R-soon")  # expires 2028-01-31
        earn(system_client, later, "R-later", when=EARNED + timedelta(days=31))  # 2028-02-29
        as_of = datetime(2028, 1, 2, 12, 0, tzinfo=UTC)  # 29 days before 2028-01-31
        assert lifecycle.points_expiry_notices(as_of=as_of).rows == 1
        assert lifecycle.points_expiry_notices(as_of=as_of + timedelta(days=1)).rows == 0
        notices = list(OutboxEvent.objects.filter(topic="points.expiring_soon"))
        assert len(notices) == 1
        assert notices[0].member_id == soon.pk
        assert notices[0].payload["points"] == 100
        assert notices[0].payload["expires_on"] == "2028-01-31"

    def test_the_day_before_the_window_no_notice(self, make_member, system_client):
        member = make_member()
        earn(system_client, member, "R-1")
        assert (
            lifecycle.points_expiry_notices(as_of=datetime(2027, 12, 31, 12, tzinfo=UTC)).rows == 0
        )
        assert lifecycle.points_expiry_notices(as_of=datetime(2028, 1, 1, 12, tzinfo=UTC)).rows == 1
