"""The staff's campaign and experiment screens."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django import forms
from django.utils import timezone

from campaigns.admin import results_chart, variants_parse
from campaigns.experiments import experiment_create, experiment_results
from campaigns.models import Assignment, Campaign, Experiment, Variant
from club.models import Market
from tests.campaigns.helpers import make_campaign
from tests.helpers import SYSTEM, buy

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/admin/campaigns/campaign/"
EXPERIMENTS = "/admin/campaigns/experiment/"


def test_the_list_shows_spent_budget_purchases_rewarded_and_members_reached(
    admin_client, make_member
):
    make_campaign("SHOWN", reward=10, budget_points=1000)
    one, two = make_member(), make_member()
    buy(one, "10.00")
    buy(one, "10.00")
    buy(two, "10.00")
    page = admin_client.get(CAMPAIGNS)
    assert page.status_code == 200
    (row,) = page.context["cl"].result_list
    assert (row.spent, row.rewarded, row.reached) == (30, 3, 2)
    html = page.content.decode()
    assert "SHOWN" in html and "1,000" in html and ">active<" in html


def test_pause_and_resume_actions(admin_client, make_member):
    campaign = make_campaign("ACT")
    response = admin_client.post(
        CAMPAIGNS, {"action": "pause", "_selected_action": [campaign.pk]}, follow=True
    )
    assert response.status_code == 200
    assert Campaign.objects.get(pk=campaign.pk).paused is True
    assert buy(make_member(), "10.00")["bonuses"] == []
    admin_client.post(CAMPAIGNS, {"action": "resume", "_selected_action": [campaign.pk]})
    assert Campaign.objects.get(pk=campaign.pk).paused is False


def test_staff_create_a_campaign_through_the_service(admin_client):
    now = timezone.now()
    market = Market.objects.get(code="SE")
    form = {
        "code": "STAFF",
        "name": "Staff's",
        "market": market.pk,
        "starts_at_0": (now - timedelta(days=1)).strftime("%Y-%m-%d"),
        "starts_at_1": "00:00:00",
        "ends_at_0": (now + timedelta(days=5)).strftime("%Y-%m-%d"),
        "ends_at_1": "00:00:00",
        "channel": "any",
        "stores": '["SE-001"]',
        "tiers": "[]",
        "segments": "[]",
        "categories": '["tools"]',
        "skus": "[]",
        "kind": "points",
        "points": "25",
        "min_amount": "0",
    }
    bad = admin_client.post(CAMPAIGNS + "add/", {**form, "stores": '["NO-001"]'})
    assert bad.status_code == 200 and "Not a store of market SE" in bad.content.decode()
    assert not Campaign.objects.exists()
    response = admin_client.post(CAMPAIGNS + "add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    created = Campaign.objects.get(code="STAFF")
    assert (created.kind, created.points, created.stores) == ("points", 25, ["SE-001"])


def test_a_campaign_that_booked_points_cannot_be_deleted(admin_client, make_member):
    campaign = make_campaign("KEEP")
    buy(make_member(), "10.00")
    assert (
        admin_client.post(f"{CAMPAIGNS}{campaign.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert Campaign.objects.filter(pk=campaign.pk).exists()


def test_variants_are_written_as_one_line():
    assert variants_parse("control:50, double:50:DOUBLE-TOOLS") == [
        {"code": "control", "weight": 50, "campaign": None},
        {"code": "double", "weight": 50, "campaign": "DOUBLE-TOOLS"},
    ]
    for bad in ("control", "control:50", "a:x, b:1", "a:0, b:1"):
        with pytest.raises(forms.ValidationError):
            variants_parse(bad)


def test_the_experiment_page_charts_the_same_figures_as_the_results(admin_client, make_member):
    now = timezone.now()
    experiment = experiment_create(
        actor=SYSTEM,
        code="EXP-CHART",
        name="Chart",
        market_code="SE",
        hypothesis="",
        metric="revenue",
        window_days=7,
        variants=[{"code": "control", "weight": 1}, {"code": "double", "weight": 1}],
        starts_at=now - timedelta(days=2),
        ends_at=now + timedelta(days=2),
    )
    variants = {v.code: v for v in Variant.objects.filter(experiment=experiment)}
    for variant, amounts in {"control": [10, 20, 30, 40], "double": [30, 40, 50, 70]}.items():
        for amount in amounts:
            member = make_member()
            Assignment.objects.create(
                experiment=experiment,
                member=member,
                variant=variants[variant],
                assigned_at=now - timedelta(days=1),
                window_ends_at=now + timedelta(days=6),
            )
            buy(member, f"{amount}.00")
    results = experiment_results(experiment=experiment)
    relative = results["comparisons"][0]["relative"]
    chart = str(results_chart(results))
    assert chart.startswith("<svg") and f"relative effect {relative['effect']}" in chart
    assert f"95 %: [{relative['ci95'][0]}, {relative['ci95'][1]}]" in chart
    page = admin_client.get(f"{EXPERIMENTS}{experiment.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and f"{relative['effect']:.6g}" in html
    assert re.search(r"double \((inconclusive|better|worse)\)", html)


def test_staff_create_an_experiment(admin_client):
    make_campaign("OFFER")
    now = timezone.now()
    form = {
        "code": "EXP-STAFF",
        "name": "Staff's",
        "market": Market.objects.get(code="SE").pk,
        "hypothesis": "",
        "metric": "retained",
        "window_days": "14",
        "starts_at_0": now.strftime("%Y-%m-%d"),
        "starts_at_1": "00:00:00",
        "ends_at_0": (now + timedelta(days=20)).strftime("%Y-%m-%d"),
        "ends_at_1": "00:00:00",
        "variants_text": "control:1, offer:1:NOPE",
    }
    bad = admin_client.post(EXPERIMENTS + "add/", form)
    assert bad.status_code == 200 and "NOPE" in bad.content.decode()
    assert not Experiment.objects.exists()
    response = admin_client.post(
        EXPERIMENTS + "add/", {**form, "variants_text": "control:1, offer:1:OFFER"}
    )
    assert response.status_code == 302
    experiment = Experiment.objects.get(code="EXP-STAFF")
    assert [v.campaign.code if v.campaign else None for v in experiment.variants.all()] == [
        None,
        "OFFER",
    ]
