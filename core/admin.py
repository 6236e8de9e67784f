"""Staff admin for the plumbing: API clients and the outbox.

A client's raw key is shown once, on the page that answers its creation or
rotation (`key_once.html`, sent with Cache-Control: no-store); it never
travels in a Django message (a cookie) or the session, and only its digest
is stored, which is never displayed.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from core.auth import forget_cached_clients
from core.errors import DomainError
from core.models import SCOPES, ApiClient, OutboxEvent
from core.services import api_client_create, api_client_revoke, api_client_rotate

admin.site.site_header = "Lojal staff"
admin.site.site_title = "Lojal staff"
admin.site.index_title = "The club"


class ReadOnlyAdmin(admin.ModelAdmin):
    """A list and detail view that nobody, superusers included, can write
    through: for append-only records and rows only services may write."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RefusedActionsMixin:
    """An action the user may not run is not offered (Django's `permissions`
    of @admin.action), and posting it anyway answers 403 rather than
    Django's quiet "no action selected"."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        action = request.POST.get("action") if request.method == "POST" else None
        if action:
            declared = {name for _, name, _ in self._get_base_actions()}  # type: ignore[attr-defined]
            if action in declared and action not in self.get_actions(request):  # type: ignore[attr-defined]
                raise PermissionDenied
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


# The raw key made in save_model, held on the request (memory, this request
# only) until response_add renders it.
_NEW_KEY = "_lojal_new_api_key"


def key_once_response(
    request: HttpRequest, keys: list[tuple[ApiClient, str]], title: str
) -> HttpResponse:
    """The one page that shows raw keys: nothing stores it, nothing caches it."""
    response = TemplateResponse(
        request,
        "admin/core/apiclient/key_once.html",
        {**admin.site.each_context(request), "title": title, "keys": keys},
    )
    add_never_cache_headers(response)  # no-store: no browser or proxy keeps the page
    return response


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in SCOPES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    class Meta:
        model = ApiClient
        fields = ["name", "scopes", "markets", "rate_per_minute", "expires_at"]


CREATE_API_KEY = "core.create_api_key"


@admin.register(ApiClient)
class ApiClientAdmin(RefusedActionsMixin, admin.ModelAdmin):
    """Creating a client, or rotating its key, makes a bearer secret: it
    needs `core.create_api_key` on top of Django's own permissions."""

    form = ApiClientForm
    list_display = [
        "name",
        "key_prefix",
        "scope_list",
        "market_list",
        "rate_per_minute",
        "expires_at",
        "revoked_at",
        "created_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "markets"]
    search_fields = ["name", "key_prefix"]
    filter_horizontal = ["markets"]
    actions = ["revoke", "rotate_key"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiClient]:
        return super().get_queryset(request).prefetch_related("markets")

    def get_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> list[str]:
        fields = ["name", "scopes", "markets", "rate_per_minute", "expires_at"]
        if obj is not None:
            fields = ["key_prefix", *fields, "created_at", "revoked_at"]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> list[str]:
        return ["key_prefix", "created_at", "revoked_at"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: ApiClient | None = None) -> bool:
        return False  # ledger entries point at clients: revoke instead

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CREATE_API_KEY)

    def has_create_key_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CREATE_API_KEY)

    @admin.display(description="scopes")
    def scope_list(self, client: ApiClient) -> str:
        return ", ".join(client.scopes or [])

    @admin.display(description="markets")
    def market_list(self, client: ApiClient) -> str:
        return ", ".join(m.code for m in client.markets.all()) or "all"

    def save_model(
        self, request: HttpRequest, obj: ApiClient, form: forms.ModelForm, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            forget_cached_clients()
            return
        data = form.cleaned_data
        client, raw = api_client_create(
            name=data["name"],
            scopes=data["scopes"],
            market_codes=[market.code for market in data["markets"]],
            expires_at=data["expires_at"],
            rate_per_minute=data["rate_per_minute"],
        )
        # The admin carries on with the object it passed in (history, redirect).
        obj.pk = client.pk
        obj._state.adding = False
        obj.refresh_from_db()
        setattr(request, _NEW_KEY, raw)

    def response_add(
        self, request: HttpRequest, obj: ApiClient, post_url_continue: str | None = None
    ) -> HttpResponse:
        raw = getattr(request, _NEW_KEY, None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        delattr(request, _NEW_KEY)
        return key_once_response(request, [(obj, raw)], "The new API key")

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool
    ) -> None:
        if change:  # on creation api_client_create has set the markets
            super().save_related(request, form, formsets, change)
            forget_cached_clients()

    @admin.action(description="Revoke the selected API clients", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        revoked = 0
        for client in queryset.filter(revoked_at__isnull=True):
            api_client_revoke(client=client)
            self.log_change(request, client, "Revoked")
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API client(s).", messages.SUCCESS)

    @admin.action(
        description="Rotate the key of the selected API clients", permissions=["create_key"]
    )
    def rotate_key(
        self, request: HttpRequest, queryset: QuerySet[ApiClient]
    ) -> HttpResponse | None:
        rotated: list[tuple[ApiClient, str]] = []
        for client in queryset:
            if client.revoked_at is not None:
                self.message_user(
                    request, f"{client.name} is revoked: its key was not rotated.", messages.ERROR
                )
                continue
            try:
                raw = api_client_rotate(client=client)
            except DomainError as exc:
                self.message_user(request, f"{client.name}: {exc.detail}", messages.ERROR)
                continue
            self.log_change(request, client, "Rotated the key")
            rotated.append((client, raw))
        if not rotated:
            return None  # back to the list, with the messages of the refusals
        return key_once_response(request, rotated, "The new API keys")


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "topic", "dedupe_key", "member", "created_at", "delivered_at"]
    list_filter = ["topic", ("delivered_at", admin.EmptyFieldListFilter)]
    list_select_related = ["member"]
    search_fields = ["dedupe_key__exact", "member__member_number__exact"]
    ordering = ["-id"]
    show_full_result_count = False
