"""The admin lists NPS answers, scores and models, and nobody edits them there."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from insights.models import NpsResponse
from insights.scoring import insights_refresh
from tests.helpers import buy

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_the_insights_admin_lists_and_refuses_changes(admin_client, make_member):
    member = make_member(consents={"profiling": True})
    buy(member, "120.00")
    NpsResponse.objects.create(
        member=member,
        market=member.market,
        touchpoint="app",
        score=10,
        comment="Love the app",
        occurred_at=timezone.now() - timedelta(hours=1),
    )
    insights_refresh(market="SE")
    for path, text in [
        ("/admin/insights/npsresponse/", "Love the app"),
        ("/admin/insights/memberscore/", member.member_number),
        ("/admin/insights/fittedmodel/", "SE"),
    ]:
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert text in response.content.decode(), path
    assert admin_client.get("/admin/insights/npsresponse/add/").status_code == 403
    answer = NpsResponse.objects.get(member=member)
    page = admin_client.get(f"/admin/insights/npsresponse/{answer.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
