"""The domain checks that exist once and every call shares: the store in
the member's market, the market's currency, when a receipt may have
occurred, the member being active."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from club.dates import FUTURE_TOLERANCE, MAX_BACKDATE, occurred_at_check
from club.models import Market
from club.selectors import store_in_market
from core.errors import CurrencyMismatch, MemberInactive, UnknownStore, ValidationFailed
from members.models import Member

pytestmark = pytest.mark.django_db


def test_a_store_is_found_only_in_its_own_market(demo):
    se, no = Market.objects.get(code="SE"), Market.objects.get(code="NO")
    assert store_in_market(market=se, store_code="SE-001").code == "SE-001"
    with pytest.raises(UnknownStore):
        store_in_market(market=no, store_code="SE-001")
    with pytest.raises(UnknownStore):
        store_in_market(market=se, store_code="NOPE-1")


def test_money_is_booked_only_in_the_markets_currency(demo):
    se = Market.objects.get(code="SE")
    se.check_currency("SEK")
    with pytest.raises(CurrencyMismatch):
        se.check_currency("NOK")


def test_occurred_at_has_a_window_of_five_minutes_ahead_and_ninety_days_back():
    now = timezone.now()
    occurred_at_check(now + FUTURE_TOLERANCE, now)
    occurred_at_check(now - MAX_BACKDATE, now)
    with pytest.raises(ValidationFailed) as ahead:
        occurred_at_check(now + FUTURE_TOLERANCE + timedelta(seconds=1), now)
    assert ahead.value.errors == {"occurred_at": ["Lies in the future."]}
    with pytest.raises(ValidationFailed):
        occurred_at_check(now - MAX_BACKDATE - timedelta(seconds=1), now)


@pytest.mark.parametrize("status", ["suspended", "closed", "erased"])
def test_only_an_active_member_may_be_written_to(make_member, status):
    member = make_member()
    member.check_active()
    Member.objects.filter(pk=member.pk).update(status=status)
    member.refresh_from_db()
    with pytest.raises(MemberInactive):
        member.check_active()
