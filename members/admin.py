"""Admin pieces about members that the other apps' admins share. The
member's own page composes every domain and lives in backoffice/admin.py."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from members.models import Member


class MemberFilter(admin.SimpleListFilter):
    """Rows of one member, chosen by link (?member=<id>, e.g. from the
    member's page) or by searching the member number: no list of every
    member, of which there are millions."""

    title = "member"
    parameter_name = "member"
    member_field = "member_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        if not value or not value.isdigit():
            return []
        member = Member.objects.filter(pk=value).only("member_number").first()
        return [(value, str(member) if member else f"member #{value}")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(**{self.member_field: int(value)})
        return queryset
