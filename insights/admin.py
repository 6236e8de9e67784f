"""Staff admin for what the club learns: NPS answers, members' scores and
the fitted models, read-only (answers come through the API, scores from
`insights_refresh`). The charts are the dashboard's."""

from __future__ import annotations

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from insights.models import FittedModel, MemberScore, NpsResponse
from members.admin import MemberFilter


@admin.register(NpsResponse)
class NpsResponseAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "member", "market", "score", "touchpoint", "store", "comment"]
    list_filter = ["market", "touchpoint", "score", MemberFilter]
    list_select_related = ["member", "market", "store"]
    ordering = ["-occurred_at", "-id"]
    search_fields = ["member__member_number__exact"]
    search_help_text = "Member number."
    show_full_result_count = False


@admin.register(MemberScore)
class MemberScoreAdmin(ReadOnlyAdmin):
    list_display = [
        "member",
        "market",
        "as_of",
        "segment",
        "action",
        "r",
        "f",
        "m",
        "recency_days",
        "frequency_12m",
        "monetary_12m",
        "p_alive",
        "clv_12m",
    ]
    list_filter = ["market", "segment", "action"]
    list_select_related = ["member", "market"]
    ordering = ["member_id"]
    search_fields = ["member__member_number__exact"]
    search_help_text = "Member number."
    show_full_result_count = False


@admin.register(FittedModel)
class FittedModelAdmin(ReadOnlyAdmin):
    list_display = ["market", "as_of", "members", "purchase_model", "spend_model", "fitted_at"]
    list_filter = ["market"]
    ordering = ["-as_of", "market__code"]
