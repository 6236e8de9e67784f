"""Staff admin for the points ledger.

The ledger and everything that records money or points is read-only here,
for everyone: points change only through the services (e.g. the member's
"Adjust points" page), never by editing rows.
"""

from __future__ import annotations

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from loyalty.models import LedgerEntry, Lot, LotMovement, Purchase, Redemption, Return
from members.admin import MemberFilter


class LotMemberFilter(MemberFilter):
    member_field = "lot__member_id"


class LedgerAdmin(ReadOnlyAdmin):
    """Large append-only tables: newest first, no full count."""

    ordering = ["-id"]
    show_full_result_count = False
    list_per_page = 100


@admin.register(LedgerEntry)
class LedgerEntryAdmin(LedgerAdmin):
    list_display = [
        "id",
        "created_at",
        "member",
        "kind",
        "points",
        "reference",
        "expires_on",
        "staff_user",
        "api_client",
    ]
    list_filter = ["kind", MemberFilter]
    list_select_related = ["member", "staff_user", "api_client"]
    search_fields = ["member__member_number__exact"]
    search_help_text = "Member number."


@admin.register(Lot)
class LotAdmin(LedgerAdmin):
    list_display = [
        "id",
        "member",
        "points",
        "remaining",
        "available_on",
        "expires_on",
        "matured",
        "entry",
    ]
    list_filter = ["matured", MemberFilter]
    list_select_related = ["member", "entry"]
    search_fields = ["member__member_number__exact"]
    search_help_text = "Member number."


@admin.register(LotMovement)
class LotMovementAdmin(LedgerAdmin):
    list_display = ["id", "created_at", "lot", "entry", "kind", "points"]
    list_filter = ["kind", LotMemberFilter]
    list_select_related = ["lot", "entry"]
    search_fields = ["lot__member__member_number__exact"]
    search_help_text = "Member number."


@admin.register(Purchase)
class PurchaseAdmin(LedgerAdmin):
    list_display = [
        "receipt_id",
        "store",
        "member",
        "occurred_at",
        "currency",
        "total",
        "points_earned",
        "returned_amount",
        "points_reversed",
    ]
    list_filter = ["channel", "store__market", MemberFilter]
    list_select_related = ["store", "member"]
    search_fields = ["receipt_id__exact"]
    search_help_text = "Receipt id."
    exclude = ["body_hash", "response"]


@admin.register(Return)
class ReturnAdmin(LedgerAdmin):
    list_display = [
        "receipt_id",
        "store",
        "purchase_receipt",
        "occurred_at",
        "total",
        "points_reversed",
    ]
    list_select_related = ["store", "purchase"]
    search_fields = ["receipt_id__exact", "purchase__receipt_id__exact"]
    search_help_text = "Receipt id of the return or of its purchase."
    exclude = ["body_hash", "response"]

    @admin.display(description="purchase receipt")
    def purchase_receipt(self, obj: Return) -> str:
        return obj.purchase.receipt_id


@admin.register(Redemption)
class RedemptionAdmin(LedgerAdmin):
    list_display = [
        "id",
        "created_at",
        "member",
        "store",
        "points",
        "value",
        "currency",
        "reference",
        "status",
        "expires_at",
    ]
    list_filter = ["status", MemberFilter]
    list_select_related = ["member", "store"]
    search_fields = ["reference__exact"]
    search_help_text = "Receipt reference."
