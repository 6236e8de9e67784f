"""The service's URLs plus one view that fails, for the test of what a
server error logs (tests/core/test_logs.py)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import handler400, handler404, handler500, urlpatterns  # noqa: F401


def fails(request: HttpRequest, member_number: str) -> HttpResponse:
    # As a database error quoting a row would: personal data in the text.
    raise RuntimeError(f"duplicate key (email)=(kim@example.com) for {member_number}")


urlpatterns = [*urlpatterns, path("tests/fails/<str:member_number>", fails)]
