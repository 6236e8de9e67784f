"""Staff admin for benefits and member lists; the history of uses is read-only.

The lookup reads the catalogue from a snapshot each process keeps for a few
seconds (rewards.selectors.CATALOGUE_TTL): an edit here reaches it that
much later, and the use of a benefit always reads it afresh.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from core.actors import staff_actor
from core.admin import ReadOnlyAdmin, RefusedActionsMixin
from core.errors import DomainError
from members.admin import MemberFilter
from rewards.codes import code_format, code_normalize
from rewards.models import Benefit, BenefitUse, MemberList, Reward, RewardPrice, Voucher
from rewards.selectors import catalogue_forget, voucher_status
from rewards.services import voucher_reactivate

# rewards and vouchers


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
    list_display = [
        "code",
        "name",
        "kind",
        "allowance",
        "period",
        "channel",
        "tier_list",
        "active",
        "ordering",
    ]
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


class RewardPriceInline(admin.TabularInline):
    model = RewardPrice
    fields = ["market", "points_cost", "value_amount"]
    extra = 0
    verbose_name = "price in a market"
    verbose_name_plural = "prices per market (override the cost, and the value in its currency)"


@admin.register(Reward)
class RewardAdmin(admin.ModelAdmin):
    inlines = [RewardPriceInline]
    list_display = [
        "code",
        "name",
        "points_cost",
        "value",
        "stock",
        "tier_list",
        "active",
        "active_from",
        "active_until",
        "ordering",
    ]
    list_filter = ["active", "tiers", "markets"]
    list_editable = ["active", "ordering"]
    search_fields = ["code", "name"]
    filter_horizontal = ["tiers", "markets"]
    prepopulated_fields = {"code": ["name"]}
    fieldsets = [
        (None, {"fields": ["code", "name", "names", "description", "active", "ordering"]}),
        (
            "Cost and value",
            {
                "fields": [
                    "points_cost",
                    "value_amount",
                    "value_currency",
                    "value_text",
                    "validity_days",
                    "stock",
                ]
            },
        ),
        ("Who and when", {"fields": ["tiers", "markets", "active_from", "active_until"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("tiers")

    @admin.display(description="tiers")
    def tier_list(self, obj: Reward) -> str:
        return ", ".join(t.name for t in obj.tiers.all()) or "every tier"

    @admin.display(description="value")
    def value(self, obj: Reward) -> str:
        if obj.value_amount is not None:
            return f"{obj.value_amount} {obj.value_currency}"
        return obj.value_text

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Issued vouchers keep their reward (PROTECT); retire it with "active".
        if obj is not None and obj.vouchers.exists():
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Voucher)
class VoucherAdmin(RefusedActionsMixin, ReadOnlyAdmin):
    """Read-only: vouchers change through the API and the services. Staff
    holding `rewards.reactivate_voucher` may give a redeemed voucher back
    once, when its purchase was fully returned."""

    list_display = [
        "display_code",
        "member",
        "reward",
        "current_status",
        "source",
        "issued_at",
        "expires_at",
        "redeemed_at",
        "redeemed_store",
        "redeemed_receipt_id",
        "reactivated",
    ]
    list_filter = ["status", "source", "reward", "reactivated", MemberFilter]
    list_select_related = ["member", "reward", "redeemed_store"]
    search_fields = ["code"]  # answered by get_search_results: exact, indexed matches
    search_help_text = "Voucher code (with or without dashes) or member number."
    ordering = ["-id"]
    show_full_result_count = False
    list_per_page = 100
    actions = ["reactivate"]
    exclude = ["code"]
    readonly_fields = [
        "display_code",
        "member_link",
        "reward",
        "current_status",
        "source",
        "points_cost",
        "value_amount",
        "value_currency",
        "value_text",
        "issued_at",
        "expires_at",
        "redeemed_at",
        "redeemed_store",
        "redeemed_receipt_id",
        "dedupe_key",
        "ledger_entry",
        "api_client",
        "reactivated",
        "reactivated_at",
        "reactivated_by",
        "reactivation_note",
    ]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.readonly_fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Voucher], search_term: str
    ) -> tuple[QuerySet[Voucher], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(member__member_number=term)
        code = code_normalize(term)
        if code is not None:
            match |= Q(code=code)
        return queryset.filter(match), False

    @admin.display(description="code", ordering="code")
    def display_code(self, obj: Voucher) -> str:
        return code_format(obj.code)

    @admin.display(description="status", ordering="status")
    def current_status(self, obj: Voucher) -> str:
        return voucher_status(obj, timezone.now())

    @admin.display(description="member")
    def member_link(self, obj: Voucher) -> str:
        url = reverse("admin:members_member_change", args=[obj.member_id])
        return format_html('<a href="{}">{}</a>', url, obj.member)

    def has_reactivate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rewards.reactivate_voucher")

    @admin.action(description="Reactivate (purchase fully returned)", permissions=["reactivate"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Voucher]) -> None:
        done = 0
        for voucher in queryset.order_by("id"):
            try:
                voucher_reactivate(voucher=voucher, actor=staff_actor(request.user))
            except DomainError as exc:
                self.message_user(
                    request,
                    f"{code_format(voucher.code)} not reactivated: {exc.detail}",
                    messages.ERROR,
                )
            else:
                done += 1
                self.log_change(request, voucher, "Reactivated: the purchase was fully returned.")
        if done:
            self.message_user(request, f"Reactivated {done} voucher(s).", messages.SUCCESS)


MEMBER_VOUCHERS_ON_PAGE = 50


def member_vouchers_html(member: Any) -> str:
    """The member's latest vouchers, read-only, for the member's admin page."""
    from django.template.loader import render_to_string

    now = timezone.now()
    vouchers = (
        Voucher.objects.filter(member_id=member.pk)
        .select_related("reward", "redeemed_store")
        .order_by("-id")[:MEMBER_VOUCHERS_ON_PAGE]
    )
    rows = [
        {"voucher": v, "code": code_format(v.code), "status": voucher_status(v, now)}
        for v in vouchers
    ]
    return render_to_string(
        "admin/rewards/member_vouchers.html",
        {
            "rows": rows,
            "limit": MEMBER_VOUCHERS_ON_PAGE,
            "all_url": reverse("admin:rewards_voucher_changelist") + f"?member={member.pk}",
        },
    )


# Missions, gift rules, members' missions, gifts and events (registers them).
