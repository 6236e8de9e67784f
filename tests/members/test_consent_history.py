"""Every change of a consent adds a row to the member's consent history:
at enrolment (source: the actor), on a profile change (only the consents
that changed), on an import (source `import`, tests/integrations/)."""

from __future__ import annotations

from typing import Any

import pytest

from checkout.services import member_enrol
from members.models import ConsentChange
from members.services import member_update

pytestmark = pytest.mark.django_db


def test_enrolment_and_profile_changes_add_consent_history(demo: None, system_client: Any) -> None:
    enrolled = member_enrol(
        actor=system_client,
        market_code="SE",
        email="c@example.test",
        consents={"marketing_email": True, "profiling": False},
    )
    rows = set(
        ConsentChange.objects.filter(member=enrolled).values_list("consent", "granted", "source")
    )
    assert rows == {("marketing_email", True, "tests"), ("profiling", False, "tests")}
    member_update(
        member=enrolled,
        changes={"consents": {"marketing_email": True, "marketing_sms": True}},
        actor=system_client,
    )
    assert ConsentChange.objects.filter(member=enrolled).count() == 3  # only the change
