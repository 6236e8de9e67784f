"""The staff's member page, composed of every domain: find one in one box, see their points, cards,
consents, ledger and tier history, edit the profile, adjust points, override
the tier, block a card; export and erase a member.

Each action that moves points, status or personal data needs its own
permission (members.models.Member.Meta.permissions): the page shows it only
to staff who hold it and its view answers 403 to others.
`members.adjust_points` books at most SUPPORT_ADJUST_LIMIT points a call,
either way; `members.adjust_points_unlimited` lifts the limit.

Every write goes through a service (member_update, points_adjust,
tier_override, card_block); balance, pending and the tier are never
editable on the form.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from backoffice.dashboard import member_points_chart
from backoffice.selectors import member_points_by_month
from club.dates import local_date, today_for
from club.models import Market, Tier
from core.actors import staff_actor
from core.errors import DomainError, ValidationFailed
from insights.selectors import member_insights
from integrations.privacy import member_erase, member_export_chunks
from journeys.admin import member_missions_html
from loyalty.models import LedgerEntry, PointsAccount, TierChange
from loyalty.services import points_adjust
from loyalty.tiers import tier_override
from members.models import Card, Member
from members.selectors import normalize_phone
from members.services import CONSENT_FIELDS, card_block, member_update
from rewards.admin import MEMBER_VOUCHERS_ON_PAGE, member_vouchers_html

ADJUST_POINTS = "members.adjust_points"
ADJUST_POINTS_UNLIMITED = "members.adjust_points_unlimited"
OVERRIDE_TIER = "members.override_tier"
EXPORT_MEMBER = "members.export_member"
ERASE_MEMBER = "members.erase_member"

LEDGER_ON_PAGE = 100
TIER_HISTORY_ON_PAGE = 50
PROFILE_FIELDS = ("first_name", "last_name", "email", "phone", "birth_date", "language")
PHONE_LIKE = re.compile(r"\+?[\d\s().-]{6,20}")


def member_search_q(term: str) -> Q | None:
    """Exact matches on the indexed identifiers: member number, card number,
    email (case-insensitive, the lower(email) index), phone, local forms
    read in each market's numbering plan, and the id in the club a member
    was imported from (external_id). Needs the `email_lower` alias."""
    term = term.strip()
    if not term:
        return None
    if "@" in term:
        return Q(email_lower=term.lower()) | Q(external_id=term)
    match = Q(external_id=term)
    digits = re.sub(r"[\s-]", "", term)
    if digits.isdigit():
        match |= Q(member_number=digits)
        # One indexed read for the card, so the member query stays a plain OR
        # of index conditions (a subquery inside an OR defeats the indexes).
        member_ids = list(Card.objects.filter(number=digits).values_list("member_id", flat=True))
        if member_ids:
            match |= Q(pk__in=member_ids)
    if PHONE_LIKE.fullmatch(term):
        phones = set()
        for region in Market.objects.values_list("code", flat=True):
            try:
                phones.add(normalize_phone(term, region=region))
            except ValidationFailed:
                continue
        if phones:
            match |= Q(phone__in=sorted(phones))
    return match


class CardInline(admin.TabularInline):
    model = Card
    fields = ["number", "status", "issued_at", "blocked_at", "block"]
    readonly_fields = fields
    ordering = ["issued_at", "id"]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cards change only through the block action

    @admin.display(description="")
    def block(self, card: Card) -> str:
        if card.status != Card.Status.ACTIVE:
            return ""
        url = reverse("admin:members_member_block_card", args=[quote(card.member_id), card.number])
        return format_html('<a class="button" href="{}">Block</a>', url)


class MemberForm(forms.ModelForm):
    class Meta:
        model = Member
        fields = [*PROFILE_FIELDS, *CONSENT_FIELDS]

    def clean_phone(self) -> str | None:
        phone = self.cleaned_data.get("phone")
        if not phone:
            return None
        try:
            return normalize_phone(phone, region=self.instance.market.code)
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.detail) from exc


class AdjustPointsForm(forms.Form):
    points = forms.IntegerField(help_text="Positive to add, negative to take away; not zero.")
    reason = forms.CharField(max_length=255, help_text="Why: kept in the ledger for good.")

    def __init__(self, *args: Any, limit: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit
        if limit is not None:
            self.fields["points"].help_text += f" At most {limit} either way."

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if self.limit is not None and abs(points) > self.limit:
            raise forms.ValidationError(
                f"You may adjust at most {self.limit} points at a time; "
                "a larger adjustment needs a club admin."
            )
        return points


class OverrideTierForm(forms.Form):
    tier = forms.ModelChoiceField(queryset=Tier.objects.order_by("rank"), empty_label=None)
    reason = forms.CharField(max_length=255, help_text="Why: kept in the tier history for good.")
    until = forms.DateField(
        label="End date",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The tier is kept as set until this day (in the member's market), then the "
        "evaluation takes over. Not in the past.",
    )

    def __init__(self, *args: Any, member: Member, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.member = member
        self.fields["tier"].initial = member.tier_id

    def clean_until(self) -> Any:
        until = self.cleaned_data["until"]
        if until < local_date(self.member.market, timezone.now()):
            raise forms.ValidationError("Must not be in the past.")
        return until


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    form = MemberForm
    inlines = [CardInline]
    list_display = ["member_number", "name", "market", "status", "tier", "balance", "pending"]
    list_filter = ["market", "status", "tier"]
    list_select_related = ["market", "tier", "account"]
    # The box is answered by get_search_results (exact, indexed matches);
    # search_fields only has to be non-empty for the admin to show it.
    search_fields = ["member_number"]
    search_help_text = "Member number, card number, email, phone or external id (an import's)."
    ordering = ["-id"]
    show_full_result_count = False
    readonly_fields = [
        "member_number",
        "external_id",
        "market",
        "status",
        "channel",
        "enrolment_store",
        "enrolled_at",
        "updated_at",
        "balance",
        "pending",
        "tier",
        "tier_valid_until",
        "tier_override_until",
        "consents_updated_at",
        "ledger",
        "tier_history",
        "vouchers",
        "missions",
        "insights",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "member_number",
                    "external_id",
                    "market",
                    "status",
                    "channel",
                    "enrolment_store",
                    "enrolled_at",
                    "updated_at",
                ]
            },
        ),
        ("Profile", {"fields": list(PROFILE_FIELDS)}),
        (
            "Points and tier",
            {"fields": ["balance", "pending", "tier", "tier_valid_until", "tier_override_until"]},
        ),
        ("Consents", {"fields": [*CONSENT_FIELDS, "consents_updated_at"]}),
        ("Insights", {"fields": ["insights"]}),
        (f"Ledger (latest {LEDGER_ON_PAGE})", {"fields": ["ledger"]}),
        (f"Tier history (latest {TIER_HISTORY_ON_PAGE})", {"fields": ["tier_history"]}),
        (f"Vouchers (latest {MEMBER_VOUCHERS_ON_PAGE})", {"fields": ["vouchers"]}),
        ("Welcome journey", {"fields": ["missions"]}),
    ]

    class Media:
        css = {"all": ["backoffice/dashboard.css"]}

    # -- list and search ---------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Member]:
        return super().get_queryset(request).select_related("market", "tier", "account")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Member], search_term: str
    ) -> tuple[QuerySet[Member], bool]:
        match = member_search_q(search_term)
        if match is None:
            return queryset, False
        return queryset.alias(email_lower=Lower("email")).filter(match), False

    @admin.display(description="name", ordering="last_name")
    def name(self, member: Member) -> str:
        return f"{member.first_name} {member.last_name}".strip()

    def _account(self, member: Member) -> PointsAccount | None:
        try:
            return member.account
        except PointsAccount.DoesNotExist:
            return None

    @admin.display(description="balance", ordering="account__balance")
    def balance(self, member: Member) -> int | None:
        account = self._account(member)
        return account.balance if account else None

    @admin.display(description="pending", ordering="account__pending")
    def pending(self, member: Member) -> int | None:
        account = self._account(member)
        return account.pending if account else None

    @admin.display(description="ledger")
    def ledger(self, member: Member) -> str:
        entries = (
            LedgerEntry.objects.filter(member_id=member.pk)
            .select_related("staff_user", "api_client")
            .order_by("-id")[:LEDGER_ON_PAGE]
        )
        full = reverse("admin:loyalty_ledgerentry_changelist") + f"?member={member.pk}"
        return render_to_string(
            "admin/members/member/ledger.html",
            {"entries": entries, "full_ledger_url": full, "limit": LEDGER_ON_PAGE},
        )

    @admin.display(description="tier history")
    def tier_history(self, member: Member) -> str:
        changes = (
            TierChange.objects.filter(member_id=member.pk)
            .select_related("from_tier", "to_tier", "staff_user")
            .order_by("-changed_at", "-id")[:TIER_HISTORY_ON_PAGE]
        )
        return render_to_string(
            "admin/members/member/tier_history.html",
            {"changes": changes, "limit": TIER_HISTORY_ON_PAGE},
        )

    @admin.display(description="insights")
    def insights(self, member: Member) -> str:
        """What the club learned of the member (the last insights_refresh)
        and their points over the last 12 months."""
        rows = member_points_by_month(member=member, today=today_for(member.market))
        return render_to_string(
            "admin/members/member/insights.html",
            {
                "insights": member_insights(member=member),
                "points_chart": member_points_chart(rows=rows, member=str(member)),
            },
        )

    @admin.display(description="vouchers")
    def vouchers(self, member: Member) -> str:
        return member_vouchers_html(member)

    @admin.display(description="missions")
    def missions(self, member: Member) -> str:
        return member_missions_html(member)

    # -- writes --------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # members enrol through the API (member_enrol)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # members are closed or erased, never deleted

    def save_model(
        self, request: HttpRequest, obj: Member, form: forms.ModelForm, change: bool
    ) -> None:
        changes: dict[str, Any] = {
            field: form.cleaned_data[field]
            for field in form.changed_data
            if field in PROFILE_FIELDS
        }
        consents = {
            field: form.cleaned_data[field]
            for field in form.changed_data
            if field in CONSENT_FIELDS
        }
        if consents:
            changes["consents"] = consents
        if changes:
            member_update(member=obj, changes=changes, actor=staff_actor(request.user))

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "has_adjust_permission": request.user.has_perm(ADJUST_POINTS),
            "has_override_permission": request.user.has_perm(OVERRIDE_TIER),
            "has_export_permission": request.user.has_perm(EXPORT_MEMBER),
            "has_erase_permission": request.user.has_perm(ERASE_MEMBER),
        }
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:  # e.g. the email already belongs to another member
            self.message_user(request, f"Not saved: {exc.detail}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    # -- extra pages: adjust points, override the tier, block a card ----------

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/adjust-points/",
                view(self.adjust_points_view),
                name="members_member_adjust_points",
            ),
            path(
                "<path:object_id>/override-tier/",
                view(self.override_tier_view),
                name="members_member_override_tier",
            ),
            path(
                "<path:object_id>/export/",
                view(self.export_view),
                name="members_member_export",
            ),
            path(
                "<path:object_id>/erase/",
                view(self.erase_view),
                name="members_member_erase",
            ),
            path(
                "<path:object_id>/cards/<str:number>/block/",
                view(self.block_card_view),
                name="members_member_block_card",
            ),
            *super().get_urls(),
        ]

    def _member_to_change(self, request: HttpRequest, object_id: str) -> Member:
        member = self.get_object(request, unquote(object_id))
        if member is None:
            raise Http404("No such member.")
        if not self.has_change_permission(request, member):
            raise PermissionDenied
        return member

    def _member_with_perm(self, request: HttpRequest, object_id: str, perm: str) -> Member:
        if not request.user.has_perm(perm):
            raise PermissionDenied
        member = self.get_object(request, unquote(object_id))
        if member is None:
            raise Http404("No such member.")
        return member

    def _change_url(self, member: Member) -> str:
        return reverse("admin:members_member_change", args=[quote(member.pk)])

    def _page(
        self, request: HttpRequest, template: str, member: Member, title: str, **context: Any
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "member": member,
                "change_url": self._change_url(member),
                **context,
            },
        )

    def adjust_points_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        member = self._member_with_perm(request, object_id, ADJUST_POINTS)
        limit = (
            None
            if request.user.has_perm(ADJUST_POINTS_UNLIMITED)
            else settings.SUPPORT_ADJUST_LIMIT
        )
        form = AdjustPointsForm(request.POST if request.method == "POST" else None, limit=limit)
        if request.method == "POST":
            if form.is_valid():
                points, reason = form.cleaned_data["points"], form.cleaned_data["reason"]
                try:
                    result = points_adjust(
                        member=member, points=points, reason=reason, actor=staff_actor(request.user)
                    )
                except DomainError as exc:
                    for field, errors in (exc.errors or {}).items():
                        form.add_error(field if field in form.fields else None, errors)
                    self.message_user(request, f"Not booked: {exc.detail}", messages.ERROR)
                else:
                    self.log_change(request, member, f"Adjusted points {points:+d}: {reason}")
                    figures = result["member"]["points"]
                    self.message_user(
                        request,
                        f"Booked {points:+d} points for {member}: balance {figures['balance']}, "
                        f"pending {figures['pending']}.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(self._change_url(member))
            else:
                self.message_user(
                    request, "Not booked: please correct the errors below.", messages.ERROR
                )
        return self._page(
            request,
            "admin/members/member/adjust_points.html",
            member,
            f"Adjust points of {member}",
            form=form,
            account=self._account(member),
        )

    def override_tier_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        member = self._member_with_perm(request, object_id, OVERRIDE_TIER)
        form = OverrideTierForm(request.POST if request.method == "POST" else None, member=member)
        if request.method == "POST":
            if form.is_valid():
                tier, reason, until = (
                    form.cleaned_data["tier"],
                    form.cleaned_data["reason"],
                    form.cleaned_data["until"],
                )
                try:
                    tier_override(
                        member=member,
                        tier=tier,
                        reason=reason,
                        until=until,
                        actor=staff_actor(request.user),
                    )
                except DomainError as exc:
                    for field, errors in (exc.errors or {}).items():
                        form.add_error(field if field in form.fields else None, errors)
                    self.message_user(request, f"Not overridden: {exc.detail}", messages.ERROR)
                else:
                    self.log_change(
                        request, member, f"Overrode tier to {tier.code} until {until}: {reason}"
                    )
                    self.message_user(
                        request, f"{member} is now {tier} until {until:%Y-%m-%d}.", messages.SUCCESS
                    )
                    return HttpResponseRedirect(self._change_url(member))
            else:
                self.message_user(
                    request, "Not overridden: please correct the errors below.", messages.ERROR
                )
        return self._page(
            request,
            "admin/members/member/override_tier.html",
            member,
            f"Override the tier of {member}",
            form=form,
        )

    def block_card_view(self, request: HttpRequest, object_id: str, number: str) -> HttpResponse:
        member = self._member_to_change(request, object_id)
        if request.method == "POST":
            try:
                card_block(member=member, number=number)
            except DomainError as exc:
                self.message_user(request, f"Not blocked: {exc.detail}", messages.ERROR)
            else:
                self.log_change(request, member, f"Blocked card {number}")
                self.message_user(request, f"Card {number} is blocked.", messages.SUCCESS)
            return HttpResponseRedirect(self._change_url(member))
        card = Card.objects.filter(member=member, number=number).first()
        if card is None:
            raise Http404("No such card on this member.")
        return self._page(
            request,
            "admin/members/member/block_card.html",
            member,
            f"Block card {number}?",
            card=card,
        )

    # -- privacy: export and erase --------------------------------------------

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The member's data as the API's export answers it, as a download."""
        member = self._member_with_perm(request, object_id, EXPORT_MEMBER)
        self.log_change(request, member, f"Exported the member's data ({request.user})")
        chunks = (chunk.encode() for chunk in member_export_chunks(member=member))
        response = StreamingHttpResponse(chunks, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="member-{member}.json"'
        return response

    def erase_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A confirmation page, then the erasure (integrations.privacy.member_erase)."""
        member = self._member_with_perm(request, object_id, ERASE_MEMBER)
        if request.method == "POST":
            try:
                result = member_erase(member=member, actor=staff_actor(request.user))
            except DomainError as exc:
                self.message_user(request, f"Not erased: {exc.detail}", messages.ERROR)
            else:
                self.log_change(request, member, f"Erased the member ({request.user})")
                self.message_user(
                    request, f"{member} is erased ({result['erased_at']}).", messages.SUCCESS
                )
            return HttpResponseRedirect(self._change_url(member))
        return self._page(
            request,
            "admin/members/member/erase.html",
            member,
            f"Erase {member}?",
            account=self._account(member),
        )
