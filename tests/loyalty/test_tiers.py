"""Tiers: thresholds, upgrades, no downgrade by a return, the evaluation's
one-level drop and renewal, staff overrides, history and outbox."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from checkout.services import purchase_record, return_record
from club.models import Tier
from core.actors import SYSTEM
from core.models import OutboxEvent
from loyalty.models import TierChange
from loyalty.services import Line
from loyalty.tiers import qualifying_points, tier_override, tiers_evaluate
from members.models import Member

UTC = UTC
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
TODAY = date(2026, 6, 15)

pytestmark = pytest.mark.django_db


def buy(client, member, receipt, amount, when=NOW):
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


def give_back(client, receipt, original, amount, when=NOW):
    body, _ = return_record(
        actor=client,
        store_code="SE-001",
        receipt_id=receipt,
        original_store_code="SE-001",
        original_receipt_id=original,
        occurred_at=when,
        currency="SEK",
        total=Decimal(amount),
        lines=[Line(sku="X", amount=Decimal(amount))],
        now=when,
    )
    return body


def tier_of(member):
    member = Member.objects.select_related("tier").get(pk=member.pk)
    return member.tier.code, member.tier_valid_until


def set_tier(member, code, valid_until):
    Member.objects.filter(pk=member.pk).update(
        tier=Tier.objects.get(code=code), tier_valid_until=valid_until
    )


class TestUpgrade:
    def test_one_point_below_the_threshold_stays(self, make_member, system_client):
        member = make_member()
        body = buy(system_client, member, "R-1", "4999.00")
        assert body["tier_changed"] is False
        assert tier_of(member) == ("member", None)

    def test_exactly_at_the_threshold_upgrades_at_once_for_twelve_months(
        self, make_member, system_client
    ):
        member = make_member()
        buy(system_client, member, "R-1", "4999.00")
        body = buy(system_client, member, "R-2", "1.00")
        assert body["tier_changed"] is True
        assert body["member"]["tier"] == {
            "code": "silver",
            "name": "Silver",
            "valid_until": "2027-06-15",
        }
        assert tier_of(member) == ("silver", date(2027, 6, 15))
        change = TierChange.objects.get(member=member)
        assert (change.from_tier.code, change.to_tier.code, change.cause) == (
            "member",
            "silver",
            "purchase",
        )
        assert change.qualifying_points == 5000
        event = OutboxEvent.objects.get(topic="tier.changed", member=member)
        assert event.payload["to"] == "silver"

    def test_a_big_purchase_jumps_straight_to_the_highest_tier_reached(
        self, make_member, system_client
    ):
        member = make_member()
        assert buy(system_client, member, "R-1", "15000.00")["tier_changed"] is True
        assert tier_of(member)[0] == "gold"

    def test_the_new_multiplier_applies_from_the_next_purchase(self, make_member, system_client):
        member = make_member()
        first = buy(system_client, member, "R-1", "5000.00")
        assert first["points_earned"] == 5000  # earned at the old tier
        assert buy(system_client, member, "R-2", "100.00")["points_earned"] == 125

    def test_qualifying_points_are_base_points_not_multiplied(self, make_member, system_client):
        member = make_member()
        set_tier(member, "silver", date(2027, 1, 1))
        buy(system_client, member, "R-1", "1000.00")
        assert qualifying_points(member_id=member.pk, today=TODAY) == 1000

    def test_giftcards_do_not_qualify(self, make_member, system_client):
        member = make_member()
        body, _ = purchase_record(
            actor=system_client,
            member_ref={"member_number": member.member_number},
            store_code="SE-001",
            receipt_id="R-gc",
            channel="store",
            occurred_at=NOW,
            currency="SEK",
            total=Decimal("6000.00"),
            lines=[Line(sku="GC", amount=Decimal("6000.00"), category="giftcards")],
            now=NOW,
        )
        assert body["tier_changed"] is False
        assert qualifying_points(member_id=member.pk, today=TODAY) == 0

    def test_a_return_lowers_qualifying_points_but_never_downgrades_at_once(
        self, make_member, system_client
    ):
        member = make_member()
        buy(system_client, member, "R-1", "5000.00")
        assert tier_of(member)[0] == "silver"
        give_back(system_client, "RET-1", "R-1", "2500.00")
        assert qualifying_points(member_id=member.pk, today=TODAY) == 2500
        assert tier_of(member)[0] == "silver"
        give_back(system_client, "RET-2", "R-1", "2500.00")
        assert qualifying_points(member_id=member.pk, today=TODAY) == 0
        assert tier_of(member)[0] == "silver"

    def test_purchases_older_than_the_window_do_not_count(self, make_member, system_client):
        member = make_member()
        old = datetime(2025, 6, 10, 12, tzinfo=UTC)  # June 2025: outside July 2025..June 2026
        buy(system_client, member, "R-old", "3000.00", when=old)
        buy(system_client, member, "R-new", "2500.00")
        assert qualifying_points(member_id=member.pk, today=TODAY) == 2500
        assert tier_of(member)[0] == "member"


class TestEvaluation:
    def test_the_day_validity_ends_nothing_happens(self, make_member):
        member = make_member()
        set_tier(member, "silver", TODAY)
        assert tiers_evaluate(as_of=NOW).rows == 0
        assert tier_of(member) == ("silver", TODAY)

    def test_the_day_after_a_member_who_no_longer_qualifies_drops_one_level(self, make_member):
        gold, silver = make_member(), make_member()
        set_tier(gold, "gold", TODAY - timedelta(days=1))
        set_tier(silver, "silver", TODAY - timedelta(days=1))
        assert tiers_evaluate(as_of=NOW).rows == 2
        assert tier_of(gold) == ("silver", date(2027, 6, 15))
        assert tier_of(silver) == ("member", None)  # the base tier does not run out
        change = TierChange.objects.get(member=gold)
        assert (change.from_tier.code, change.to_tier.code, change.cause) == (
            "gold",
            "silver",
            "evaluation",
        )
        assert OutboxEvent.objects.filter(topic="tier.changed").count() == 2

    def test_a_member_who_still_qualifies_renews_for_twelve_months(
        self, make_member, system_client
    ):
        member = make_member()
        buy(system_client, member, "R-1", "5200.00", when=NOW - timedelta(days=60))
        set_tier(member, "silver", TODAY - timedelta(days=1))
        tiers_evaluate(as_of=NOW)
        assert tier_of(member) == ("silver", date(2027, 6, 15))
        assert TierChange.objects.filter(member=member, cause="renewal").count() == 1
        assert not OutboxEvent.objects.filter(
            topic="tier.changed", member=member, payload__cause="evaluation"
        ).exists()

    def test_a_gold_member_with_silver_points_drops_to_silver_not_further(
        self, make_member, system_client
    ):
        member = make_member()
        buy(system_client, member, "R-1", "6000.00", when=NOW - timedelta(days=30))
        set_tier(member, "gold", TODAY - timedelta(days=1))
        tiers_evaluate(as_of=NOW)
        assert tier_of(member) == ("silver", date(2027, 6, 15))

    def test_a_second_run_changes_nothing(self, make_member):
        member = make_member()
        set_tier(member, "gold", TODAY - timedelta(days=1))
        tiers_evaluate(as_of=NOW)
        assert tiers_evaluate(as_of=NOW).rows == 0
        assert tier_of(member)[0] == "silver"
        assert TierChange.objects.filter(member=member).count() == 1

    def test_a_run_stopped_half_way_resumes_and_changes_each_member_once(self, make_member):
        members = [make_member() for _ in range(7)]
        for member in members:
            set_tier(member, "gold", TODAY - timedelta(days=1))
        assert tiers_evaluate(as_of=NOW, batch_size=3, max_batches=1).rows == 3
        assert tiers_evaluate(as_of=NOW, batch_size=3).rows == 4
        assert {tier_of(m)[0] for m in members} == {"silver"}
        assert TierChange.objects.filter(member__in=members).count() == 7

    def test_the_command_takes_as_of(self, make_member, capsys):
        member = make_member()
        set_tier(member, "silver", date(2026, 6, 14))
        call_command("tiers_evaluate", "--as-of", "2026-06-15T00:30:00+02:00")
        assert "tiers_evaluate: 1 rows" in capsys.readouterr().out
        assert tier_of(member)[0] == "member"


class TestOverride:
    def test_an_override_wins_until_its_end_then_the_evaluation_takes_over(
        self, make_member, system_client
    ):
        member = make_member()
        tier_override(
            actor=SYSTEM,
            member=member,
            tier=Tier.objects.get(code="gold"),
            reason="VIP guest",
            until=date(2026, 7, 31),
            now=NOW,
        )
        assert tier_of(member) == ("gold", date(2026, 7, 31))
        change = TierChange.objects.get(member=member)
        assert (change.cause, change.reason) == ("staff", "VIP guest")
        # A purchase during the override does not change the tier.
        assert buy(system_client, member, "R-1", "6000.00")["tier_changed"] is False
        assert tiers_evaluate(as_of=datetime(2026, 7, 31, 12, tzinfo=UTC)).rows == 0
        assert tier_of(member)[0] == "gold"
        # The day after the end: what the member earned (silver), not gold minus one.
        tiers_evaluate(as_of=datetime(2026, 8, 1, 12, tzinfo=UTC))
        assert tier_of(member) == ("silver", date(2027, 8, 1))
        member.refresh_from_db()
        assert member.tier_override_until is None

    def test_an_override_down_ends_at_what_was_earned(self, make_member):
        member = make_member()
        set_tier(member, "gold", date(2027, 1, 1))
        tier_override(
            actor=SYSTEM,
            member=member,
            tier=Tier.objects.get(code="member"),
            reason="fraud review",
            until=date(2026, 6, 20),
            now=NOW,
        )
        tiers_evaluate(as_of=datetime(2026, 6, 21, 12, tzinfo=UTC))
        assert tier_of(member) == ("member", None)

    def test_an_override_needs_a_reason(self, make_member):
        from core.errors import ValidationFailed

        member = make_member()
        with pytest.raises(ValidationFailed):
            tier_override(
                actor=SYSTEM,
                member=member,
                tier=Tier.objects.get(code="gold"),
                reason=" ",
                until=date(2026, 7, 1),
                now=NOW,
            )
        assert tier_of(member)[0] == "member"
