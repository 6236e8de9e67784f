"""The staff's admin site: the dashboard is its home page.

Staff land on the dashboard after logging in (it is the site's index, the
"Home" of every breadcrumb); the admin's list of apps, the classic index,
moves to `apps/` and stays in the side bar of every page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from backoffice.dashboard import dashboard_view


class LojalAdminSite(admin.AdminSite):
    index_title = "All apps"

    def get_urls(self) -> list[Any]:
        return [
            path("apps/", self.admin_view(self.apps_index), name="apps"),
            *super().get_urls(),
        ]

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return dashboard_view(request, each_context=self.each_context(request))

    def apps_index(self, request: HttpRequest) -> TemplateResponse:
        """The admin's own index: every app and model the user may see."""
        return super().index(request)
