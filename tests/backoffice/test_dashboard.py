"""The staff's dashboard, the admin's home page: every panel from the
insights' reports, one market at a time, each panel shown to staff who may
view what it summarises; and the member page's insights."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from backoffice import charts
from backoffice.dashboard import ACTION_NAMES, SEGMENT_NAMES, SEGMENT_ORDER
from backoffice.selectors import member_points_by_month, month_starts
from club.dates import today_for
from club.models import Market
from insights.models import FittedModel, MemberScore
from loyalty.models import PointsAccount
from loyalty.services import points_adjust
from tests.backoffice.conftest import BUYERS
from tests.helpers import SYSTEM

pytestmark = pytest.mark.django_db

HOME = "/admin/"
PASSWORD = "a-staff-password-1"


def staff(*perms: str) -> Client:
    """A logged-in staff user holding exactly these permissions (app.codename)."""
    user = User.objects.create_user(f"staff-{len(perms)}-{'-'.join(perms)}"[:150], is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client


def test_staff_land_on_the_dashboard_after_logging_in(demo):
    User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    client = Client()
    to_login = client.get(HOME)
    assert to_login.status_code == 302 and "/admin/login/" in to_login["Location"]
    response = client.post(
        to_login["Location"], {"username": "boss", "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == HOME
    assert "backoffice/dashboard.html" in [t.name for t in response.templates]
    assert reverse("admin:index") == HOME


@pytest.mark.postgres  # insights_refresh (the club fixture)
def test_every_panel_shows_the_markets_figures(admin_client, club):
    response = admin_client.get(HOME, {"market": "SE"})
    assert response.status_code == 200
    context, html = response.context, response.content.decode()
    assert context["market"].code == "SE"
    # Members: the twelve buyers are new and active, the idle member neither,
    # the erased one not counted.
    before, now = club["before"], context["members"]
    assert now["total"] - before["total"] == BUYERS + 1
    assert now["active"] - before["active"] == BUYERS
    assert now["new"] - before["new"] == BUYERS
    # NPS: one promoter and one detractor: 0, a mark per month with answers.
    nps = context["nps"]["report"]
    assert (nps["responses"], nps["promoters"], nps["detractors"], nps["nps"]) == (2, 1, 1, 0.0)
    zone = ZoneInfo(club["se"].time_zone)
    months = {moment.astimezone(zone).strftime("%Y-%m") for moment in club["answered"]}
    assert str(context["nps"]["chart"]).count('class="mark"') == len(months)
    # Segments: all eight with two bars each, in the contract's order, each
    # share the stored scores' count over the scored buyers.
    segments = context["segments"]
    assert str(segments["chart"]).count('class="mark"') == 16
    assert [row["segment"] for row in segments["rows"]] == list(SEGMENT_ORDER)
    for row in segments["rows"]:
        stored = MemberScore.objects.filter(market=club["se"], segment=row["segment"]).count()
        share = charts.percent(round(stored / BUYERS, 4))
        name = SEGMENT_NAMES[row["segment"]]
        tip = f"{name} {ACTION_NAMES[row['action']]}, share of members: {share}"
        assert escape(tip) in html, tip
    # Retention: this month's cohort holds the buyer.
    this_month = today_for(club["se"]).strftime("%Y-%m")
    cohort = next(c for c in context["retention"]["report"]["cohorts"] if c["cohort"] == this_month)
    assert cohort["active"][0] >= 1
    assert 'class="mark"' in str(context["retention"]["chart"])
    # Liability: the outstanding total is the last closing, the accounts' sum.
    liability = context["liability"]["report"]
    assert liability["months"][-1]["closing"] == liability["outstanding"]["total"]
    accounts = PointsAccount.objects.filter(member__market=club["se"])
    assert liability["outstanding"]["total"] == sum(a.balance + a.pending for a in accounts)
    assert 'class="mark"' in str(context["liability"]["rollforward"])
    # The model's figures, and the spend model not fitted said so.
    for text in (
        "Members",
        "Net Promoter Score",
        "Value segments",
        "Retention by enrolment month",
        "Points liability",
    ):
        assert text in html, text
    fitted = FittedModel.objects.get(market=club["se"])
    assert f"r {fitted.purchase_model['r']:.4f}" in html
    assert f"{fitted.spend_model['members']} repeat buyers" in html
    assert "backoffice/dashboard.css" in html


def test_the_first_market_by_code_unless_one_is_chosen(admin_client, demo):
    first = Market.objects.order_by("code").first()
    assert admin_client.get(HOME).context["market"] == first
    response = admin_client.get(HOME, {"market": "NO"})
    assert response.context["market"].code == "NO"
    assert '<option value="NO" selected>' in response.content.decode()
    assert admin_client.get(HOME, {"market": "XX"}).status_code == 404


def test_a_panel_without_data_says_why(admin_client, demo):
    # Finland: no answers, no refresh yet.
    html = admin_client.get(HOME, {"market": "FI"}).content.decode()
    assert "No scores yet: run insights_refresh" in html
    assert "No model fitted yet: run insights_refresh" in html
    assert "No NPS answers in the last 12 months" in html


def test_each_panel_needs_the_view_permission_of_what_it_summarises(demo):
    members_only = staff("members.view_member").get(HOME, {"market": "SE"})
    assert members_only.status_code == 200
    assert {"members", "retention"} <= members_only.context.keys()
    assert not {"nps", "segments", "liability", "model"} & members_only.context.keys()
    html = members_only.content.decode()
    assert "Points liability" not in html and "Net Promoter Score" not in html

    finance = staff("loyalty.view_ledgerentry").get(HOME, {"market": "SE"})
    assert "liability" in finance.context and "members" not in finance.context
    assert "Points liability" in finance.content.decode()

    marketing = staff("insights.view_npsresponse", "insights.view_memberscore").get(HOME)
    assert {"nps", "segments", "model"} <= marketing.context.keys()
    assert "liability" not in marketing.context


def test_staff_without_any_of_them_are_refused_and_others_sent_to_log_in(demo):
    assert staff("rewards.view_benefit").get(HOME).status_code == 403
    assert Client().get(HOME).status_code == 302


def test_the_admins_list_of_apps_stays_one_click_away(admin_client, demo):
    response = admin_client.get(reverse("admin:apps"))
    assert response.status_code == 200
    assert "admin/index.html" in [t.name for t in response.templates]
    assert reverse("admin:apps") in admin_client.get(HOME).content.decode()


def test_the_favicon_is_served_by_the_service(client, demo):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    icon = client.get(response["Location"])
    assert icon.status_code == 200 and b"<svg" in b"".join(icon.streaming_content)


@pytest.mark.postgres  # insights_refresh (the club fixture)
def test_the_member_page_shows_the_members_insights_and_points_by_month(admin_client, club):
    buyer = club["buyer"]
    response = admin_client.get(reverse("admin:members_member_change", args=[buyer.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    stored = MemberScore.objects.get(member=buyer)
    for text in (
        f">{stored.segment}<",
        f">{stored.action}<",
        f">{stored.p_alive:.3f}<",
        f">{stored.expected_purchases_90d:.2f}<",
        f">{stored.clv_12m} SEK<",
        "Last NPS answer: <strong>10</strong>",
    ):
        assert text in html, text
    account = PointsAccount.objects.get(member=buyer)
    assert "Points at the end of each month" in html
    assert f'data-value="{account.balance + account.pending}"' in html


def test_a_member_without_the_profiling_consent_shows_why_there_are_no_scores(
    admin_client, make_member
):
    member = make_member(market="SE", profiling=False)
    html = admin_client.get(reverse("admin:members_member_change", args=[member.pk])).content
    assert b"No consent to profiling" in html


def test_points_by_month_sum_the_ledger_at_each_months_end(make_member):
    """Entries booked now, read from this month and from months ahead (the
    ledger is append-only: its entries cannot be moved back in time)."""
    member = make_member(market="SE", points=300)
    points_adjust(actor=SYSTEM, member=member, points=-100, reason="test")
    today = today_for(member.market)
    rows = member_points_by_month(member=member, today=today)
    assert [r["month"] for r in rows] == month_starts(last=today, count=12)
    assert [(r["change"], r["closing"]) for r in rows] == [(0, 0)] * 11 + [(200, 200)]
    # Two months on, this month is the tenth of twelve and its closing carries over.
    this_month = today.replace(day=1)
    next_month = (this_month + timedelta(days=32)).replace(day=1)
    ahead = (next_month + timedelta(days=32)).replace(day=1)
    rows = member_points_by_month(member=member, today=ahead)
    assert [r["month"] for r in rows][-3:] == [this_month, next_month, ahead]
    assert [(r["change"], r["closing"]) for r in rows[-4:]] == [
        (0, 0),
        (200, 200),
        (0, 200),
        (0, 200),
    ]
    # A year and more on, the points are the opening balance of every month.
    later = member_points_by_month(member=member, today=today + timedelta(days=500))
    assert [(r["change"], r["closing"]) for r in later] == [(0, 200)] * 12
