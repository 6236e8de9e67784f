"""The indexes the lookups by number, store and member read, after issue 10
dropped those no query read (the *_like twins of the unique numbers, the
enrolment store's full index, the tier changes' member index)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import QuerySet

from loyalty.models import TierChange
from members.models import Card, Member

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def plan(queryset: QuerySet[Any]) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        # The test's tables are tiny: without this the planner reads them whole.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("queryset", "index"),
    [
        (
            lambda: Member.objects.filter(member_number="1000000017"),
            "members_member_member_number_key",
        ),
        (lambda: Card.objects.filter(number="9752123456789016"), "members_card_number_key"),
        (lambda: Member.objects.filter(enrolment_store_id=1), "member_enrolment_store"),
        (
            lambda: TierChange.objects.filter(member_id=1).order_by("-changed_at"),
            "tierchange_member",
        ),
    ],
)
def test_the_lookups_read_an_index(queryset: Any, index: str) -> None:
    assert index in plan(queryset())


def test_no_pattern_ops_twins_of_the_numbers() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('members_member', "
            "'members_card') AND indexdef LIKE '%%pattern_ops%%'"
        )
        assert cursor.fetchall() == []
