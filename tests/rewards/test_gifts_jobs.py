"""The gift jobs: birthday, tier upgrade and welcome gifts, each given once
per member and period however often the job runs; in market time; in
points (set-based, and member by member for a member in debt) or vouchers."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from club.dates import local_date
from club.models import Market, Tier
from core.actors import SYSTEM
from core.models import OutboxEvent
from loyalty.ledger import expiry_for
from loyalty.models import LedgerEntry, Lot, PointsAccount, TierChange
from loyalty.services import points_adjust
from loyalty.tiers import tier_override
from members.models import Member
from rewards.gifts import birthday_gifts, tier_upgrade_gifts, welcome_gifts
from rewards.models import Gift, GiftRule, Reward, Voucher
from tests.helpers import assert_ledger_consistent, buy, enrol_at, local

pytestmark = pytest.mark.django_db


def points(member) -> int:
    return PointsAccount.objects.get(member_id=member.pk).balance


def born_in(month: int, year: int = 1990) -> date:
    return date(year, month, 15)


def this_month(market: str = "SE") -> date:
    return local_date(Market.objects.get(code=market), timezone.now())


# --- birthday ------------------------------------------------------------------


def test_birthday_gifts_twice_in_the_month_give_one_gift(demo, make_member):
    today = this_month()
    other = today.month % 12 + 1
    due = make_member(birth_date=born_in(today.month))
    due_no = make_member(market="NO", birth_date=born_in(this_month("NO").month))
    not_yet = make_member(birth_date=born_in(other))
    unknown = make_member()
    suspended = make_member(birth_date=born_in(today.month))
    Member.objects.filter(pk=suspended.pk).update(status="suspended")

    first = birthday_gifts()
    second = birthday_gifts()
    assert (first.rows, second.rows) == (2, 0)
    assert points(due) == points(due_no) == 200
    assert points(not_yet) == points(unknown) == points(suspended) == 0
    gift = Gift.objects.get(member=due)
    assert gift.dedupe_key == f"birthday:{today.year}:{due.pk}" and gift.kind == "birthday"
    assert gift.points == 200 and gift.rule.name == "Birthday gift"
    entry = gift.entry
    assert (entry.kind, entry.points, entry.reference) == ("bonus", 200, f"gift:{gift.dedupe_key}")
    assert entry.expires_on == expiry_for(due.market, today)
    lot = Lot.objects.get(entry=entry)
    assert lot.matured and lot.remaining == 200 and lot.available_on == today
    event = OutboxEvent.objects.get(dedupe_key=f"gift.given:{gift.dedupe_key}")
    assert event.topic == "gift.given" and event.payload["points"] == 200
    assert event.payload["member_number"] == due.member_number
    assert_ledger_consistent()


def test_the_next_year_gives_the_next_birthday_gift(demo, make_member):
    today = this_month()
    member = make_member(birth_date=born_in(today.month))
    birthday_gifts()
    next_year = timezone.now() + timedelta(days=366)
    if local_date(member.market, next_year).month != today.month:
        next_year -= timedelta(days=2)
    assert birthday_gifts(as_of=next_year).rows == 1
    assert birthday_gifts(as_of=next_year).rows == 0
    assert Gift.objects.filter(member=member).count() == 2
    assert points(member) == 400
    assert_ledger_consistent()


def test_the_birthday_month_begins_at_midnight_in_the_market(demo, make_member):
    today = this_month()
    first_of_next = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    member = make_member(birth_date=born_in(first_of_next.month))
    ten_past = local(first_of_next, 0, 10)  # still the month before in UTC
    assert ten_past.astimezone(timezone.get_fixed_timezone(0)).month != first_of_next.month
    assert birthday_gifts(as_of=local(first_of_next - timedelta(days=1), 23, 50)).rows == 0
    assert birthday_gifts(as_of=ten_past).rows == 1
    assert Gift.objects.get(member=member).dedupe_key == (
        f"birthday:{first_of_next.year}:{member.pk}"
    )


def test_a_birthday_gift_pays_a_debt_first(demo, make_member):
    member = make_member(points=100, birth_date=born_in(this_month().month))
    points_adjust(actor=SYSTEM, member=member, points=-150, reason="a correction")  # a debt of 50
    neighbour = make_member(birth_date=born_in(this_month().month))  # set-based in the same batch
    assert birthday_gifts().rows == 2
    assert points(member) == 150 and points(neighbour) == 200
    assert (
        Lot.objects.get(entry__reference=f"gift:birthday:{this_month().year}:{member.pk}").remaining
        == 150
    )
    assert_ledger_consistent()


def test_a_job_stopped_half_way_resumes_where_it_stopped(demo, make_member):
    month = this_month().month
    members = [make_member(birth_date=born_in(month)) for _ in range(5)]
    assert birthday_gifts(batch_size=2, max_batches=1).rows == 2
    assert birthday_gifts(batch_size=2).rows == 3
    assert birthday_gifts(batch_size=2).rows == 0
    assert all(points(m) == 200 for m in members)
    assert Gift.objects.count() == 5
    assert_ledger_consistent()


def test_a_voucher_birthday_gift_is_issued_once(demo, make_member):
    GiftRule.objects.filter(kind="birthday").update(active=False)
    rule = GiftRule.objects.create(
        kind="birthday", name="Birthday coffee", reward=Reward.objects.get(code="coffee-voucher")
    )
    member = make_member(birth_date=born_in(this_month().month))
    assert birthday_gifts().rows == 1
    assert birthday_gifts().rows == 0
    voucher = Voucher.objects.get(member=member)
    assert voucher.source == "gift" and voucher.reward.code == "coffee-voucher"
    assert voucher.points_cost == 0
    gift = Gift.objects.get(member=member)
    assert gift.voucher == voucher and gift.rule == rule and gift.points == 0
    assert points(member) == 0
    assert not LedgerEntry.objects.filter(member=member).exists()


def test_a_rule_for_the_market_comes_before_a_rule_for_all(demo, make_member):
    se_rule = GiftRule.objects.create(kind="birthday", name="Födelsedag", reward_points=300)
    se_rule.markets.set([Market.objects.get(code="SE")])
    se = make_member(birth_date=born_in(this_month().month))
    no = make_member(market="NO", birth_date=born_in(this_month("NO").month))
    assert birthday_gifts().rows == 2
    assert (points(se), points(no)) == (300, 200)
    assert Gift.objects.get(member=se).rule == se_rule
    assert birthday_gifts().rows == 0


def test_an_inactive_rule_gives_nothing(demo, make_member):
    GiftRule.objects.update(active=False)
    make_member(birth_date=born_in(this_month().month))
    assert birthday_gifts().rows == 0
    assert welcome_gifts().rows == 0
    assert not Gift.objects.exists()


# --- tier upgrade ------------------------------------------------------------------


def _upgrade(member) -> TierChange:
    buy(member, "5000.00")  # 5,000 qualifying points: Silver
    return TierChange.objects.get(member=member)


def test_a_tier_upgrade_gift_once_per_upgrade(demo, make_member):
    member = make_member()
    change = _upgrade(member)
    assert (change.cause, change.to_tier.code) == ("purchase", "silver")
    assert tier_upgrade_gifts().rows == 1
    assert tier_upgrade_gifts().rows == 0
    gift = Gift.objects.get(member=member)
    assert gift.dedupe_key == f"tier_upgrade:{change.pk}" and gift.points == 500
    assert points(member) == 500
    # Up again, to Gold: another upgrade, another gift.
    buy(member, "10000.00")
    assert TierChange.objects.filter(member=member).count() == 2
    assert tier_upgrade_gifts().rows == 1
    assert points(member) == 1000
    assert_ledger_consistent()


def test_staff_overrides_and_downgrades_are_not_gifted(demo, make_member):
    member = make_member()
    tier_override(
        actor=SYSTEM,
        member=member,
        tier=Tier.objects.get(code="gold"),
        reason="VIP",
        until=this_month() + timedelta(days=30),
    )
    silver, gold = Tier.objects.get(code="silver"), Tier.objects.get(code="gold")
    TierChange.objects.create(member=member, from_tier=gold, to_tier=silver, cause="evaluation")
    assert tier_upgrade_gifts().rows == 0


def test_a_tier_rule_gifts_only_upgrades_to_its_tier(demo, make_member):
    GiftRule.objects.filter(kind="tier_upgrade").update(active=False)
    GiftRule.objects.create(
        kind="tier_upgrade",
        name="Welcome to Gold",
        reward_points=1000,
        tier=Tier.objects.get(code="gold"),
    )
    member = make_member()
    _upgrade(member)  # to Silver
    assert tier_upgrade_gifts().rows == 0
    buy(member, "10000.00")  # to Gold
    assert tier_upgrade_gifts().rows == 1
    assert Gift.objects.get(member=member).points == 1000


def test_upgrades_from_before_the_rule_are_not_gifted_after_the_fact(demo, make_member):
    member = make_member()
    change = _upgrade(member)
    GiftRule.objects.filter(kind="tier_upgrade").update(
        created_at=change.changed_at + timedelta(seconds=1)
    )
    assert tier_upgrade_gifts().rows == 0


# --- welcome ------------------------------------------------------------------------


def test_a_welcome_gift_once_per_member(demo, make_member):
    member = make_member()
    assert welcome_gifts().rows == 1
    assert welcome_gifts().rows == 0
    gift = Gift.objects.get(member=member)
    assert gift.dedupe_key == f"welcome:{member.pk}" and points(member) == 50
    # The demo's own members enrolled before the rule existed: no gift.
    assert Gift.objects.count() == 1
    assert_ledger_consistent()


def test_members_enrolled_before_the_rule_or_long_ago_get_no_welcome_gift(demo, make_member):
    rule = GiftRule.objects.get(kind="welcome")
    before = enrol_at(make_member(), rule.created_at - timedelta(minutes=1))
    assert welcome_gifts().rows == 0  # enrolled before the rule existed
    GiftRule.objects.filter(pk=rule.pk).update(created_at=timezone.now() - timedelta(days=90))
    long_ago = enrol_at(make_member(), timezone.now() - timedelta(days=45))
    recent = enrol_at(make_member(), timezone.now() - timedelta(days=3))
    assert welcome_gifts().rows >= 2  # the demo's members are new, too
    mine = {before.pk, long_ago.pk, recent.pk}
    # `before` is in now: the rule is older than its enrolment.
    assert set(Gift.objects.filter(member_id__in=mine).values_list("member_id", flat=True)) == {
        before.pk,
        recent.pk,
    }


# --- commands and threads -------------------------------------------------------------


@pytest.mark.parametrize("command", ["birthday_gifts", "tier_upgrade_gifts", "welcome_gifts"])
def test_the_gift_commands_run_as_of(demo, make_member, command):
    make_member(birth_date=born_in(this_month().month))
    out = io.StringIO()
    call_command(command, "--as-of", timezone.now().isoformat(), stdout=out)
    assert out.getvalue().startswith(f"{command}: ")
    call_command(command, stdout=out)
    assert f"{command}: 0 rows" in out.getvalue().splitlines()[-1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_birthday_jobs_at_once_give_one_gift_each(demo, make_member):
    month = this_month().month
    members = [make_member(birth_date=born_in(month)) for _ in range(30)]
    barrier = threading.Barrier(2)

    def run(_: int) -> int:
        try:
            barrier.wait(timeout=30)
            return birthday_gifts(batch_size=7).rows
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        given = list(pool.map(run, range(2)))
    assert sum(given) == 30, given
    assert Gift.objects.count() == 30
    assert all(points(m) == 200 for m in members)
    assert_ledger_consistent()


def test_a_gift_rule_is_validated(demo):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        GiftRule(kind="welcome", name="x").full_clean()
    with pytest.raises(ValidationError):
        GiftRule(
            kind="welcome", name="x", reward_points=5, tier=Tier.objects.get(code="gold")
        ).full_clean()
