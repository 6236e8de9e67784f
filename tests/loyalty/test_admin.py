"""The loyalty admin: the ledger is read-only for everyone; markets, stores
and tiers are edited as usual."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from club.models import Store
from core.actors import SYSTEM
from loyalty.models import LedgerEntry, Lot, LotMovement, Purchase

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(make_member: Any) -> LedgerEntry:
    member = make_member(points=500)
    return LedgerEntry.objects.get(member=member)


@pytest.mark.parametrize("model", [LedgerEntry, LotMovement, Lot, Purchase])
def test_no_one_may_add_change_or_delete_ledger_rows(rf, admin_user, model):
    request = rf.get("/")
    request.user = admin_user
    model_admin = admin.site._registry[model]
    assert admin_user.is_superuser
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.has_view_permission(request)
    assert "delete_selected" not in model_admin.get_actions(request)


def test_a_ledger_entry_cannot_be_changed_through_the_admin(admin_client, entry):
    url = reverse("admin:loyalty_ledgerentry_change", args=[entry.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and "Save" not in page.content.decode()
    response = admin_client.post(
        url,
        {"member": entry.member_id, "kind": "adjust", "points": "999999", "reason": "free points"},
    )
    assert response.status_code == 403
    entry.refresh_from_db()
    assert (entry.points, entry.reason) == (500, "test setup")


def test_a_ledger_entry_cannot_be_deleted_through_the_admin(admin_client, entry):
    url = reverse("admin:loyalty_ledgerentry_delete", args=[entry.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    response = admin_client.post(
        reverse("admin:loyalty_ledgerentry_changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    assert LedgerEntry.objects.filter(pk=entry.pk, points=500).exists()


def test_a_ledger_entry_cannot_be_added_through_the_admin(admin_client, entry):
    before = LedgerEntry.objects.count()
    url = reverse("admin:loyalty_ledgerentry_add")
    response = admin_client.post(url, {"member": entry.member_id, "kind": "adjust", "points": "5"})
    assert response.status_code == 403
    assert LedgerEntry.objects.count() == before


def test_lot_movements_cannot_be_changed_or_deleted(admin_client, make_member):
    from loyalty.services import points_adjust

    member = make_member(points=500)
    points_adjust(actor=SYSTEM, member=member, points=-200, reason="spend")
    movement = LotMovement.objects.get(lot__member=member)
    for name in ("change", "delete"):
        url = reverse(f"admin:loyalty_lotmovement_{name}", args=[movement.pk])
        assert admin_client.post(url, {"points": "0", "post": "yes"}).status_code == 403
    movement.refresh_from_db()
    assert movement.points == -200
    listing = admin_client.get(
        reverse("admin:loyalty_lotmovement_changelist"),
        {"member": member.pk, "kind__exact": "spend"},
    )
    assert list(listing.context["cl"].result_list) == [movement]


def test_the_ledger_list_filters_by_kind_and_member(admin_client, make_member):
    from loyalty.services import points_adjust

    member, other = make_member(points=300), make_member(points=40)
    points_adjust(actor=SYSTEM, member=member, points=-100, reason="correction")
    url = reverse("admin:loyalty_ledgerentry_changelist")
    rows = list(
        admin_client.get(url, {"member": member.pk, "kind__exact": "adjust"})
        .context["cl"]
        .result_list
    )
    assert [e.points for e in rows] == [-100, 300]  # newest first
    assert admin_client.get(url, {"kind__exact": "earn"}).context["cl"].result_list.count() == 0
    by_number = admin_client.get(url, {"q": other.member_number}).context["cl"].result_list
    assert [e.member_id for e in by_number] == [other.pk]


def test_purchases_are_read_only_and_found_by_receipt_id(admin_client, make_member, system_client):
    from checkout.services import purchase_record
    from loyalty.services import Line

    member = make_member()
    purchase_record(
        actor=system_client,
        member_ref={"member_number": member.member_number},
        store_code="SE-001",
        receipt_id="R-1001",
        channel="store",
        occurred_at=timezone.now() - timedelta(minutes=5),
        currency="SEK",
        total=Decimal("250.00"),
        lines=[Line(sku="SKU-1", category="tools", quantity=1, amount=Decimal("250.00"))],
    )
    url = reverse("admin:loyalty_purchase_changelist")
    assert [
        p.receipt_id for p in admin_client.get(url, {"q": "R-1001"}).context["cl"].result_list
    ] == ["R-1001"]
    assert list(admin_client.get(url, {"q": "R-10"}).context["cl"].result_list) == []
    purchase = Purchase.objects.get(receipt_id="R-1001")
    change = reverse("admin:loyalty_purchase_change", args=[purchase.pk])
    assert admin_client.get(change).status_code == 200
    assert admin_client.post(change, {"total": "1"}).status_code == 403
    for name in ("return", "redemption"):
        assert (
            admin_client.get(
                reverse(f"admin:loyalty_{name}_changelist"), {"q": "R-1001"}
            ).status_code
            == 200
        )


@pytest.mark.parametrize("name", ["market", "store", "tier"])
def test_markets_stores_and_tiers_are_listed(admin_client, demo, name):
    response = admin_client.get(reverse(f"admin:club_{name}_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count > 0


def test_a_store_is_edited_in_the_admin(admin_client, demo):
    store = Store.objects.get(code="SE-002")
    response = admin_client.post(
        reverse("admin:club_store_change", args=[store.pk]),
        {
            "code": "SE-002",
            "name": "Göteborg Centrum",
            "market": store.market_id,
            "channel": "store",
        },
    )
    assert response.status_code == 302
    store.refresh_from_db()
    assert store.name == "Göteborg Centrum"
