"""factory_boy factories for the rows tests need but do not test: a member
with a card and an empty points account, as enrolment leaves them, without
the enrolment's checks (its own tests in tests/checkout/ prove those)."""

from __future__ import annotations

import os
from typing import Any

import factory
from factory.django import DjangoModelFactory

from club.models import Market, Tier
from loyalty.services import account_open
from members.models import Card, Member
from members.numbers import member_number_for, new_card_number


class MemberFactory(DjangoModelFactory):
    class Meta:
        model = Member
        skip_postgeneration_save = True  # the hook saves what it changes itself

    class Params:
        market_code = "SE"

    market = factory.LazyAttribute(lambda o: Market.objects.get(code=o.market_code))
    tier = factory.LazyFunction(lambda: Tier.objects.order_by("rank").first())
    email = factory.Sequence(lambda n: f"member{n}-{os.getpid()}@example.test")
    first_name = "Test"
    last_name = factory.Sequence(lambda n: f"Member {n}")
    language = factory.LazyAttribute(lambda o: o.market.language)

    @factory.post_generation
    def enrolled(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        """The member number (from the row's id), a card, the points account."""
        if not create:
            return
        self.member_number = member_number_for(self.pk)
        Member.objects.filter(pk=self.pk).update(member_number=self.member_number)
        Card.objects.create(member=self, number=new_card_number())
        account_open(member=self)
