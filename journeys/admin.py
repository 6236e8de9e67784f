"""Staff admin for the welcome journey and gifts: missions (with how many
members started, completed and missed each), gift rules, and read-only
lists of members' missions, gifts and activity events. The member's page shows the member's missions with
`member_missions_html`.

Purchases read the active missions from a snapshot each process keeps for
a few seconds (journeys.services.SNAPSHOT_TTL): an edit here reaches them that
much later.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, IntegerField, Max, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core.admin import ReadOnlyAdmin
from journeys.models import ActivityEvent, MemberMission, Mission
from journeys.services import journey_forget, member_missions
from members.admin import MemberFilter
from rewards.models import Gift, GiftRule

S = MemberMission.Status


def _count(status: str | None) -> Subquery:
    """Members' rows of the mission (in a status), counted on the
    (mission, status) index, one small subquery per column."""
    rows = MemberMission.objects.filter(mission=OuterRef("pk"))
    if status is not None:
        rows = rows.filter(status=status)
    return Subquery(
        rows.order_by().values("mission").annotate(n=Count("*")).values("n"),
        output_field=IntegerField(),
    )


def _reward(obj: Any) -> str:
    if obj.reward_points:
        return f"{obj.reward_points} points"
    return f"voucher: {obj.reward.code}" if obj.reward_id else "-"


@admin.register(Mission)
class MissionAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "goal",
        "window",
        "reward_shown",
        "active",
        "order",
        "started",
        "completed",
        "missed",
        "latest_completion",
    ]
    list_filter = ["active", "goal", "markets"]
    list_editable = ["active", "order"]
    search_fields = ["code", "name"]
    filter_horizontal = ["markets"]
    autocomplete_fields = ["reward"]
    prepopulated_fields = {"code": ["name"]}
    fieldsets = [
        (None, {"fields": ["code", "name", "names", "description", "active", "order", "markets"]}),
        (
            "Window, counted from the day of enrolment (day 0)",
            {"fields": ["window_start_day", "window_end_day"]},
        ),
        ("Goal", {"fields": ["goal", "days", "category", "event_type"]}),
        ("Reward: points or a voucher", {"fields": ["reward_points", "reward"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Mission]:
        return (
            super()
            .get_queryset(request)
            .select_related("reward")
            .annotate(
                started_count=_count(None),
                completed_count=_count(S.COMPLETED),
                missed_count=_count(S.MISSED),
                latest=Subquery(
                    MemberMission.objects.filter(mission=OuterRef("pk"), status=S.COMPLETED)
                    .order_by()
                    .values("mission")
                    .annotate(at=Max("completed_at"))
                    .values("at")
                ),
            )
        )

    @admin.display(description="window (days)")
    def window(self, obj: Mission) -> str:
        return f"{obj.window_start_day} to {obj.window_end_day}"

    @admin.display(description="reward")
    def reward_shown(self, obj: Mission) -> str:
        return _reward(obj)

    def _members(self, obj: Mission, count: int | None, status: str | None) -> str:
        url = reverse("admin:journeys_membermission_changelist") + f"?mission__id__exact={obj.pk}"
        if status:
            url += f"&status__exact={status}"
        return format_html('<a href="{}">{}</a>', url, count or 0)

    @admin.display(description="started", ordering="started_count")
    def started(self, obj: Mission) -> str:
        return self._members(obj, obj.started_count, None)  # type: ignore[attr-defined]

    @admin.display(description="completed", ordering="completed_count")
    def completed(self, obj: Mission) -> str:
        return self._members(obj, obj.completed_count, S.COMPLETED)  # type: ignore[attr-defined]

    @admin.display(description="missed", ordering="missed_count")
    def missed(self, obj: Mission) -> str:
        return self._members(obj, obj.missed_count, S.MISSED)  # type: ignore[attr-defined]

    @admin.display(description="latest completion", ordering="latest")
    def latest_completion(self, obj: Mission) -> Any:
        return obj.latest  # type: ignore[attr-defined]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        journey_forget()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Members' progress is history (PROTECT); retire a mission with "active".
        if obj is not None and obj.member_missions.exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        journey_forget()


@admin.register(GiftRule)
class GiftRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "reward_shown",
        "tier",
        "active",
        "market_list",
        "given",
        "created_at",
    ]
    list_filter = ["active", "kind"]
    list_editable = ["active"]
    search_fields = ["name"]
    filter_horizontal = ["markets"]
    autocomplete_fields = ["reward"]
    fields = ["name", "kind", "active", "reward_points", "reward", "tier", "markets"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[GiftRule]:
        return (
            super()
            .get_queryset(request)
            .select_related("reward", "tier")
            .prefetch_related("markets")
            .annotate(
                given_count=Subquery(
                    Gift.objects.filter(rule=OuterRef("pk"))
                    .order_by()
                    .values("rule")
                    .annotate(n=Count("*"))
                    .values("n"),
                    output_field=IntegerField(),
                )
            )
        )

    @admin.display(description="reward")
    def reward_shown(self, obj: GiftRule) -> str:
        return _reward(obj)

    @admin.display(description="markets")
    def market_list(self, obj: GiftRule) -> str:
        return ", ".join(m.code for m in obj.markets.all()) or "all"

    @admin.display(description="gifts given", ordering="given_count")
    def given(self, obj: GiftRule) -> str:
        url = reverse("admin:rewards_gift_changelist") + f"?rule__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.given_count or 0)  # type: ignore[attr-defined]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.gifts.exists():
            return False  # given gifts are history; retire a rule with "active"
        return super().has_delete_permission(request, obj)


class _MemberRowsAdmin(ReadOnlyAdmin):
    list_filter: list[Any] = [MemberFilter]
    search_fields = ["member__member_number__exact"]
    search_help_text = "Member number."
    ordering = ["-id"]
    show_full_result_count = False
    list_per_page = 100


@admin.register(MemberMission)
class MemberMissionAdmin(_MemberRowsAdmin):
    list_display = [
        "id",
        "member",
        "mission",
        "status",
        "progress_shown",
        "starts_on",
        "deadline",
        "completed_at",
        "rewarded_at",
    ]
    list_filter = ["mission", "status", MemberFilter]
    list_select_related = ["member", "mission"]

    @admin.display(description="progress")
    def progress_shown(self, obj: MemberMission) -> str:
        return f"{obj.current} / {obj.target}"


@admin.register(Gift)
class GiftAdmin(_MemberRowsAdmin):
    list_display = ["id", "created_at", "member", "kind", "rule", "points", "voucher", "dedupe_key"]
    list_filter = ["kind", "rule", MemberFilter]
    list_select_related = ["member", "rule", "voucher"]


@admin.register(ActivityEvent)
class ActivityEventAdmin(_MemberRowsAdmin):
    list_display = ["id", "occurred_at", "member", "type", "event_id", "recorded_at"]
    list_filter = ["type", MemberFilter]
    list_select_related = ["member"]


def member_missions_html(member: Any) -> str:
    """The member's welcome journey as the member sees it (every mission on
    offer, started or not), read-only, for the member's admin page."""
    missions = member_missions(member=member)
    if not missions:
        return format_html("<p>{}</p>", "No welcome-journey missions.")
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td></tr>",
        (
            (
                m["name"],
                m["status"].replace("_", " "),
                m["progress"]["current"],
                m["progress"]["target"],
                m["starts_on"],
                m["deadline"],
                f"{m['reward']['points']} points"
                if "points" in m["reward"]
                else f"voucher: {m['reward']['reward']}",
                (m["completed_at"] or "")[:16].replace("T", " "),
            )
            for m in missions
        ),
    )
    listing = reverse("admin:journeys_membermission_changelist") + f"?member={member.pk}"
    return format_html(
        '<div class="missions"><table><thead><tr><th>Mission</th><th>Status</th>'
        "<th>Progress</th><th>From</th><th>Deadline</th><th>Reward</th><th>Completed</th>"
        '</tr></thead><tbody>{}</tbody></table><p><a href="{}">Rows of this member</a></p></div>',
        rows,
        listing,
    )
