"""Staff admin for rewards and vouchers: rewards with market prices, the
read-only voucher list with its reactivation action, the member's vouchers."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from club.models import Market
from rewards.codes import code_format
from rewards.models import Reward, RewardPrice, Voucher
from rewards.services import voucher_issue
from tests.helpers import make_reward, purchase_body, redeem, return_body

pytestmark = pytest.mark.django_db


def test_staff_create_a_reward_with_a_market_price(admin_client, demo):
    norway = Market.objects.get(code="NO")
    response = admin_client.post(
        reverse("admin:rewards_reward_add"),
        {
            "code": "cinema",
            "name": "Cinema ticket",
            "names": '{"sv": "Biobiljett"}',
            "description": "",
            "active": "on",
            "ordering": "5",
            "points_cost": "900",
            "value_amount": "",
            "value_currency": "",
            "value_text": "A cinema ticket",
            "validity_days": "45",
            "stock": "20",
            "active_from": "",
            "active_until": "",
            "prices-TOTAL_FORMS": "1",
            "prices-INITIAL_FORMS": "0",
            "prices-MIN_NUM_FORMS": "0",
            "prices-MAX_NUM_FORMS": "1000",
            "prices-0-market": str(norway.pk),
            "prices-0-points_cost": "950",
            "prices-0-value_amount": "",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    reward = Reward.objects.get(code="cinema")
    assert (reward.points_cost, reward.stock, reward.validity_days) == (900, 20, 45)
    assert RewardPrice.objects.get(reward=reward).points_cost == 950


def test_a_reward_needs_a_value(admin_client, demo):
    response = admin_client.post(
        reverse("admin:rewards_reward_add"),
        {
            "code": "nothing",
            "name": "Nothing",
            "names": "{}",
            "active": "on",
            "ordering": "0",
            "points_cost": "10",
            "validity_days": "30",
            "value_amount": "5.00",
            "value_currency": "",
            "prices-TOTAL_FORMS": "0",
            "prices-INITIAL_FORMS": "0",
            "prices-MIN_NUM_FORMS": "0",
            "prices-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 200
    assert "value_currency" in response.context["adminform"].form.errors
    assert not Reward.objects.filter(code="nothing").exists()


def test_a_reward_with_vouchers_cannot_be_deleted(rf, admin_user, make_member):
    reward = make_reward()
    request = rf.get("/")
    request.user = admin_user
    model_admin = admin.site._registry[Reward]
    assert model_admin.has_delete_permission(request, reward)
    voucher_issue(member=make_member(), reward=reward, source="gift")
    assert not model_admin.has_delete_permission(request, reward)


def test_vouchers_are_read_only_for_everyone(rf, admin_user):
    request = rf.get("/")
    request.user = admin_user
    model_admin = admin.site._registry[Voucher]
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.has_view_permission(request)


def test_staff_find_a_voucher_by_code_or_member_number(admin_client, make_member):
    member, other = make_member(), make_member()
    mine = voucher_issue(member=member, reward=make_reward(), source="gift")
    theirs = voucher_issue(
        member=other, reward=Reward.objects.get(code="coffee-voucher"), source="gift"
    )
    url = reverse("admin:rewards_voucher_changelist")
    for term in (code_format(mine.code).lower(), mine.code, member.member_number):
        page = admin_client.get(url, {"q": term}).content.decode()
        assert code_format(mine.code) in page, term
        assert code_format(theirs.code) not in page, term
    detail = admin_client.get(reverse("admin:rewards_voucher_change", args=[mine.pk]))
    assert detail.status_code == 200
    assert code_format(mine.code) in detail.content.decode()
    assert (
        admin_client.post(
            reverse("admin:rewards_voucher_change", args=[mine.pk]), {"status": "cancelled"}
        ).status_code
        == 403
    )
    assert Voucher.objects.get(pk=mine.pk).status == "issued"


def _reactivate(admin_client, voucher):
    return admin_client.post(
        reverse("admin:rewards_voucher_changelist"),
        {"action": "reactivate", "_selected_action": [voucher.pk]},
        follow=True,
    )


def test_staff_reactivate_a_voucher_whose_purchase_was_returned(
    admin_client, admin_user, api, make_member
):
    member = make_member()
    voucher = voucher_issue(member=member, reward=make_reward(), source="gift")
    assert (
        api.post(
            "/api/v1/purchases", purchase_body(member.member_number, "R-100"), format="json"
        ).status_code
        == 201
    )
    assert redeem(api, voucher.code, receipt="R-100").status_code == 200
    page = _reactivate(admin_client, voucher).content.decode()
    assert "not reactivated" in page and "not fully returned" in page
    assert Voucher.objects.get(pk=voucher.pk).status == "redeemed"
    assert (
        api.post(
            "/api/v1/returns", return_body("R-100", "RET-1", "499.00"), format="json"
        ).status_code
        == 201
    )
    page = _reactivate(admin_client, voucher).content.decode()
    assert "Reactivated 1 voucher(s)." in page
    voucher.refresh_from_db()
    assert (voucher.status, voucher.reactivated, voucher.reactivated_by_id) == (
        "issued",
        True,
        admin_user.pk,
    )
    # Used again, it does not come back a second time.
    assert redeem(api, voucher.code, receipt="R-101").status_code == 200
    assert "already reactivated once" in _reactivate(admin_client, voucher).content.decode()
    assert Voucher.objects.get(pk=voucher.pk).status == "redeemed"


def test_the_member_page_shows_the_members_vouchers(admin_client, make_member):
    member, other = make_member(), make_member()
    mine = voucher_issue(member=member, reward=Reward.objects.get(code="voucher-50"), source="gift")
    theirs = voucher_issue(member=other, reward=make_reward(), source="gift")
    page = admin_client.get(reverse("admin:members_member_change", args=[member.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Vouchers (latest 50)" in html
    assert code_format(mine.code) in html and "voucher-50" in html
    assert code_format(theirs.code) not in html
    assert reverse("admin:rewards_voucher_change", args=[mine.pk]) in html
