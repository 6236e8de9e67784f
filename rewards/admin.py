"""Staff admin for benefits and member lists; the history of uses is read-only.

The lookup reads the catalogue from a snapshot each process keeps for a few
seconds (rewards.selectors.CATALOGUE_TTL): an edit here reaches it that
much later, and the use of a benefit always reads it afresh.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from config.admin import ReadOnlyAdmin
from loyalty.admin import MemberFilter
from rewards.models import Benefit, BenefitUse, MemberList
from rewards.selectors import catalogue_forget


class CatalogueAdmin(admin.ModelAdmin):
    """Forgets this process's catalogue snapshot after each edit."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        catalogue_forget()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        catalogue_forget()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        super().delete_queryset(request, queryset)
        catalogue_forget()


@admin.register(Benefit)
class BenefitAdmin(CatalogueAdmin):
    list_display = ["code", "name", "kind", "allowance", "period", "channel", "tier_list",
                    "active", "ordering"]
    list_filter = ["active", "kind", "period", "channel", "tiers", "markets"]
    list_editable = ["active", "ordering"]
    search_fields = ["code", "name"]
    filter_horizontal = ["tiers", "markets", "member_lists"]
    prepopulated_fields = {"code": ["name"]}
    fieldsets = [
        (None, {"fields": ["code", "name", "names", "description", "kind", "active", "ordering"]}),
        ("Who", {"fields": ["tiers", "markets", "member_lists"]}),
        ("How often and where", {"fields": ["allowance", "period", "channel"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("tiers")

    @admin.display(description="tiers")
    def tier_list(self, obj: Benefit) -> str:
        return ", ".join(t.name for t in obj.tiers.all())

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A used benefit is history (PROTECT); retire it with "active" instead.
        if obj is not None and obj.uses.exists():
            return False
        return super().has_delete_permission(request, obj)


@admin.register(MemberList)
class MemberListAdmin(CatalogueAdmin):
    list_display = ["name", "description", "created_at"]
    search_fields = ["name"]
    raw_id_fields = ["members"]  # lists may hold many members: no select box of them all


@admin.register(BenefitUse)
class BenefitUseAdmin(ReadOnlyAdmin):
    list_display = ["id", "used_at", "member", "benefit", "store", "channel", "period_start"]
    list_filter = ["benefit", "channel", MemberFilter]
    list_select_related = ["member", "benefit", "store"]
    search_fields = ["member__member_number__exact"]
    search_help_text = "Member number."
    ordering = ["-id"]
    show_full_result_count = False
    list_per_page = 100
