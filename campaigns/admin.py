"""Staff admin for campaigns and experiments.

Campaigns: the list shows each one's status, spent budget, purchases
rewarded and members reached; pause and resume are actions; creating and
changing go through the services (after creation only the name, the end,
the budget's amount and the pause change, as in the API). Purchases read
campaigns from a snapshot each process keeps for a few seconds
(campaigns.services.SNAPSHOT_TTL): an edit here reaches the other
processes that much later.

Experiments: created with their variants written as one line
(`control:50, double:50:DOUBLE-TOOLS`, code:weight[:campaign]); the page
of an experiment shows its results as a chart (the relative effect and its
intervals per variant, inline SVG) beside the same figures in a table.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from campaigns.experiments import (
    experiment_create,
    experiment_results,
    experiment_update,
    variants_check,
)
from campaigns.models import Campaign, Experiment, PurchaseBonus
from campaigns.selectors import campaign_status, campaigns_with_reach, experiment_status
from campaigns.services import campaign_create, campaign_delete, campaign_update, codes_check
from core.actors import staff_actor
from core.errors import DomainError

PATCHABLE = ("name", "ends_at", "budget_points", "paused")


def _form_errors(form: forms.ModelForm, error: DomainError) -> None:
    for field, problems in (error.errors or {"__all__": [error.detail]}).items():
        for problem in problems:
            form.add_error(field if field in form.fields else None, problem)


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = [
            "code",
            "name",
            "market",
            "paused",
            "starts_at",
            "ends_at",
            "budget_points",
            "channel",
            "stores",
            "tiers",
            "segments",
            "categories",
            "skus",
            "kind",
            "factor",
            "points",
            "min_amount",
            "per_member_limit",
            "stackable",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.instance.pk is None and data.get("market") is not None:
            try:
                codes_check(
                    data["market"],
                    stores=list(data.get("stores") or []),
                    tiers=list(data.get("tiers") or []),
                )
            except DomainError as error:
                _form_errors(self, error)
        return data


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    list_display = [
        "code",
        "name",
        "market",
        "status_shown",
        "starts_at",
        "ends_at",
        "reward_shown",
        "budget_shown",
        "spent_shown",
        "rewarded_shown",
        "reached_shown",
        "stackable",
    ]
    list_filter = ["market", "paused", "kind", "stackable"]
    search_fields = ["code", "name"]
    actions = ["pause", "resume"]
    fieldsets = [
        (None, {"fields": ["code", "name", "market", "paused"]}),
        ("Window and budget", {"fields": ["starts_at", "ends_at", "budget_points"]}),
        (
            "Who and what (empty lists restrict nothing)",
            {"fields": ["channel", "stores", "tiers", "segments", "categories", "skus"]},
        ),
        (
            "Reward",
            {"fields": ["kind", "factor", "points", "min_amount", "per_member_limit", "stackable"]},
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        return campaigns_with_reach()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return [
            f.name
            for f in Campaign._meta.fields
            if f.name not in PATCHABLE and f.name not in ("id", "spent_points")
        ]

    @admin.display(description="status")
    def status_shown(self, obj: Campaign) -> str:
        return campaign_status(obj, obj.spent)

    @admin.display(description="reward")
    def reward_shown(self, obj: Campaign) -> str:
        if obj.kind == Campaign.Kind.MULTIPLIER and obj.factor is not None:
            return f"x{obj.factor.normalize()}"
        return f"+{obj.points} points"

    @admin.display(description="budget")
    def budget_shown(self, obj: Campaign) -> str:
        return "-" if obj.budget_points is None else f"{obj.budget_points:,}"

    @admin.display(description="spent", ordering="spent")
    def spent_shown(self, obj: Campaign) -> str:
        return f"{obj.spent:,}"

    @admin.display(description="purchases rewarded", ordering="rewarded")
    def rewarded_shown(self, obj: Campaign) -> str:
        return f"{obj.rewarded:,}"

    @admin.display(description="members reached", ordering="reached")
    def reached_shown(self, obj: Campaign) -> str:
        return f"{obj.reached:,}"

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        actor = staff_actor(request.user)
        data = form.cleaned_data
        if change:
            changes = {f: data[f] for f in form.changed_data if f in PATCHABLE}
            campaign_update(actor=actor, campaign=obj, changes=changes)
            return
        created = campaign_create(
            actor=actor,
            code=data["code"],
            name=data["name"],
            market_code=data["market"].code,
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            kind=data["kind"],
            factor=data.get("factor"),
            points=data.get("points"),
            channel=data["channel"],
            stores=data.get("stores") or [],
            tiers=data.get("tiers") or [],
            segments=data.get("segments") or [],
            categories=data.get("categories") or [],
            skus=data.get("skus") or [],
            min_amount=data["min_amount"],
            budget_points=data.get("budget_points"),
            per_member_limit=data.get("per_member_limit"),
            stackable=data["stackable"],
        )
        if data.get("paused"):
            campaign_update(actor=actor, campaign=created, changes={"paused": True})
        obj.pk = created.pk
        obj._state.adding = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A campaign that booked points stays (pause it): its bonuses point to it.
        if obj is not None and PurchaseBonus.objects.filter(campaign=obj).exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Campaign) -> None:
        campaign_delete(actor=staff_actor(request.user), campaign=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset:
            self._guarded(request, campaign_delete, campaign, {})

    def _guarded(self, request: HttpRequest, action: Any, campaign: Campaign, changes: Any) -> bool:
        try:
            if action is campaign_delete:
                action(actor=staff_actor(request.user), campaign=campaign)
            else:
                action(actor=staff_actor(request.user), campaign=campaign, changes=changes)
        except DomainError as error:
            self.message_user(request, f"{campaign.code}: {error.detail}", messages.ERROR)
            return False
        return True

    @admin.action(description="Pause the selected campaigns")
    def pause(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        done = sum(self._guarded(request, campaign_update, c, {"paused": True}) for c in queryset)
        self.message_user(request, f"{done} campaign(s) paused.")

    @admin.action(description="Resume the selected campaigns")
    def resume(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        done = sum(self._guarded(request, campaign_update, c, {"paused": False}) for c in queryset)
        self.message_user(request, f"{done} campaign(s) resumed.")


# --- experiments ---------------------------------------------------------------------

_VARIANT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.-]{0,63})\s*:\s*(\d+)\s*(?::\s*(\S+))?\s*$")


def variants_parse(text: str) -> list[dict[str, Any]]:
    """`control:50, double:50:DOUBLE-TOOLS` as the API's variants."""
    variants = []
    for part in text.split(","):
        match = _VARIANT.match(part)
        if match is None:
            raise forms.ValidationError(f"Not code:weight[:campaign]: {part.strip()!r}")
        code, weight, campaign = match.groups()
        if int(weight) < 1:
            raise forms.ValidationError(f"The weight of {code} must be at least 1.")
        variants.append({"code": code, "weight": int(weight), "campaign": campaign})
    if len(variants) < 2:
        raise forms.ValidationError("An experiment has at least two variants.")
    return variants


class ExperimentForm(forms.ModelForm):
    variants_text = forms.CharField(
        label="Variants",
        help_text="code:weight[:campaign], comma-separated; the first is the baseline. "
        "Fixed at the first assignment.",
    )

    class Meta:
        model = Experiment
        fields = [
            "code",
            "name",
            "market",
            "hypothesis",
            "metric",
            "window_days",
            "starts_at",
            "ends_at",
        ]

    def clean_variants_text(self) -> list[dict[str, Any]]:
        return variants_parse(self.cleaned_data["variants_text"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("market") is not None and data.get("variants_text"):
            try:
                variants_check(data["market"].pk, data["variants_text"], None)
            except DomainError as error:
                _form_errors(self, error)
        return data


class ExperimentChangeForm(forms.ModelForm):
    class Meta:
        model = Experiment
        fields = ["name", "hypothesis", "ends_at"]


def _x(value: float, low: float, high: float, width: float) -> float:
    return (value - low) / (high - low) * width if high > low else width / 2


def results_chart(results: dict[str, Any]) -> SafeString:
    """The relative effect of each variant against the baseline, with its
    95 % interval (thin) and the sequential interval (thick, pale), around
    a line at 0: inline SVG, drawn from the very figures of the table."""
    rows = [c for c in results.get("comparisons", []) if c["relative"]["effect"] is not None]
    if not rows:
        return mark_safe(
            "<p>No relative effect to draw yet (too few members, or a baseline of 0).</p>"
        )
    values = [0.0]
    for c in rows:
        values.append(c["relative"]["effect"])
        for interval in (c["relative"]["ci95"], c["sequential"]["ci95"]):
            if interval:
                values.extend(interval)
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or 0.1
    low, high = low - pad, high + pad
    width, label, row_height = 480.0, 120.0, 36.0
    height = row_height * len(rows) + 30
    zero = label + _x(0.0, low, high, width)
    parts = [
        format_html(
            '<line x1="{}" y1="0" x2="{}" y2="{}" stroke="#888" stroke-dasharray="4 3"/>',
            f"{zero:.1f}",
            f"{zero:.1f}",
            f"{height - 20:.1f}",
        ),
        format_html(
            '<text x="{}" y="{}" font-size="11" text-anchor="middle">0 %</text>',
            f"{zero:.1f}",
            f"{height - 5:.1f}",
        ),
    ]
    for i, c in enumerate(rows):
        y = row_height * i + row_height / 2
        parts.append(
            format_html(
                '<text x="0" y="{}" font-size="12">{} ({})</text>',
                f"{y + 4:.1f}",
                c["variant"],
                c["decision"],
            )
        )
        sequential = c["sequential"]["ci95"]
        if sequential:
            x1, x2 = (label + _x(v, low, high, width) for v in sequential)
            parts.append(
                format_html(
                    '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#9ecae1" stroke-width="10">'
                    "<title>sequential 95 %: [{}, {}]</title></line>",
                    f"{x1:.1f}",
                    f"{y:.1f}",
                    f"{x2:.1f}",
                    f"{y:.1f}",
                    sequential[0],
                    sequential[1],
                )
            )
        ci = c["relative"]["ci95"]
        if ci:
            x1, x2 = (label + _x(v, low, high, width) for v in ci)
            parts.append(
                format_html(
                    '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#08519c" stroke-width="2">'
                    "<title>95 %: [{}, {}]</title></line>",
                    f"{x1:.1f}",
                    f"{y:.1f}",
                    f"{x2:.1f}",
                    f"{y:.1f}",
                    ci[0],
                    ci[1],
                )
            )
        effect = c["relative"]["effect"]
        parts.append(
            format_html(
                '<circle cx="{}" cy="{}" r="4" fill="#08519c"><title>relative effect {}</title></circle>',
                f"{label + _x(effect, low, high, width):.1f}",
                f"{y:.1f}",
                effect,
            )
        )
    body = format_html_join("", "{}", ((p,) for p in parts))
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" '
        'aria-label="relative effect per variant">{}</svg>',
        f"{label + width + 10:.0f}",
        f"{height:.0f}",
        body,
    )


def _figure(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "[" + ", ".join(_figure(v) for v in value) + "]"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def results_table(results: dict[str, Any]) -> SafeString:
    variants = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                v["code"],
                v["members"],
                _figure(v["sum"]),
                _figure(v["sum_squares"]),
                _figure(v["mean"]),
            )
            for v in results["variants"]
        ),
    )
    comparisons = format_html_join(
        "",
        "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                c["variant"],
                _figure(c["absolute"]["effect"]),
                _figure(c["absolute"]["ci95"]),
                _figure(c["absolute"]["p_value"]),
                _figure(c["relative"]["effect"]),
                _figure(c["relative"]["ci95"]),
                _figure(c["relative"]["p_value"]),
                _figure(c["sequential"]["ci95"]),
                c["decision"],
            )
            for c in results["comparisons"]
        ),
    )
    srm = results["srm"]
    return format_html(
        "<p>SRM p-value {} ({})</p>"
        "<table><tr><th>variant</th><th>members</th><th>sum</th><th>sum of squares</th>"
        "<th>mean</th></tr>{}</table>"
        "<table><tr><th>variant</th><th>absolute effect, 95 %</th><th>p</th>"
        "<th>relative effect, 95 %</th><th>p</th><th>sequential 95 %</th><th>decision</th></tr>"
        "{}</table>",
        _figure(srm["p_value"]),
        "ok" if srm["ok"] else "the split is broken: no decision",
        variants,
        comparisons,
    )


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "market", "metric", "status_shown", "starts_at", "ends_at"]
    list_filter = ["market", "metric"]
    search_fields = ["code", "name"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = ExperimentChangeForm if obj is not None else ExperimentForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [(None, {"fields": [*ExperimentForm.Meta.fields, "variants_text"]})]
        return [
            (
                None,
                {
                    "fields": [
                        "code",
                        "market",
                        "metric",
                        "window_days",
                        "starts_at",
                        "variants_shown",
                    ]
                },
            ),
            ("Changes at any time", {"fields": ["name", "hypothesis", "ends_at"]}),
            ("Results", {"fields": ["results_shown"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return [
            "code",
            "market",
            "metric",
            "window_days",
            "starts_at",
            "variants_shown",
            "results_shown",
        ]

    @admin.display(description="status")
    def status_shown(self, obj: Experiment) -> str:
        return experiment_status(obj)

    @admin.display(description="variants")
    def variants_shown(self, obj: Experiment) -> str:
        return ", ".join(
            f"{v.code}:{v.weight}" + (f":{v.campaign.code}" if v.campaign_id else "")
            for v in obj.variants.select_related("campaign").order_by("position")
        )

    @admin.display(description="results")
    def results_shown(self, obj: Experiment) -> SafeString:
        results = experiment_results(experiment=obj)
        return format_html("{}{}", results_chart(results), results_table(results))

    def save_model(self, request: HttpRequest, obj: Experiment, form: Any, change: bool) -> None:
        actor = staff_actor(request.user)
        data = form.cleaned_data
        if change:
            changes = {f: data[f] for f in form.changed_data}
            experiment_update(actor=actor, experiment=obj, changes=changes)
            return
        created = experiment_create(
            actor=actor,
            code=data["code"],
            name=data["name"],
            market_code=data["market"].code,
            hypothesis=data.get("hypothesis", ""),
            metric=data["metric"],
            window_days=data["window_days"],
            variants=data["variants_text"],
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
        )
        obj.pk = created.pk
        obj._state.adding = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its assignments and results are the record of what was tested
