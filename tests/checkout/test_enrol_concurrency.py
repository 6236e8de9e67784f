"""Real threads against real Postgres: parallel enrolments never duplicate a member."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from rest_framework.test import APIClient

from members.models import Member
from tests.helpers import in_parallel

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def outcome(response: Any) -> tuple[int, str | None]:
    return response.status_code, response.json().get("code")


def test_parallel_enrolments_with_one_email_in_any_case_make_one_member(api):
    def work(i: int, client: APIClient) -> tuple[int, str | None]:
        email = "Race.Email@Example.se" if i % 2 else "race.email@example.SE"
        return outcome(
            client.post("/api/v1/members", {"market": "SE", "email": email}, format="json")
        )

    counts = Counter(in_parallel(12, work, api.raw_key))
    assert counts == {(201, None): 1, (409, "member_exists"): 11}, counts
    assert Member.objects.filter(email__iexact="race.email@example.se").count() == 1


def test_parallel_enrolments_with_one_phone_in_any_form_make_one_member(api):
    forms = ["+46705550101", "070-555 01 01", "0705550101"]

    def work(i: int, client: APIClient) -> tuple[int, str | None]:
        return outcome(
            client.post(
                "/api/v1/members",
                {"market": "SE", "phone": forms[i % 3], "email": f"phone-race-{i}@example.se"},
                format="json",
            )
        )

    counts = Counter(in_parallel(12, work, api.raw_key))
    assert counts == {(201, None): 1, (409, "member_exists"): 11}, counts
    assert Member.objects.filter(phone="+46705550101").count() == 1


def test_parallel_profile_changes_to_one_email_give_it_to_one_member(api, make_member):
    members = [make_member(email=f"before-{i}@example.se") for i in range(8)]

    def work(i: int, client: APIClient) -> tuple[int, str | None]:
        return outcome(
            client.patch(
                f"/api/v1/members/{members[i].member_number}",
                {"email": "wanted@example.se"},
                format="json",
            )
        )

    counts = Counter(in_parallel(8, work, api.raw_key))
    assert counts == {(200, None): 1, (409, "member_exists"): 7}, counts
    assert Member.objects.filter(email="wanted@example.se").count() == 1
