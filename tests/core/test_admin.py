"""The API client admin: a key is shown once and only its digest is kept."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.test import APIClient

from club.models import Market
from core.auth import forget_cached_clients, key_digest
from core.models import SCOPES, ApiClient, OutboxEvent
from core.services import api_client_create

pytestmark = pytest.mark.django_db

KEY = re.compile(r"lj_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")
ADD = "/admin/core/apiclient/"


def keys_in(response: Any) -> list[str]:
    return [
        key for message in get_messages(response.wsgi_request) for key in KEY.findall(str(message))
    ]


def lookup(raw_key: str, member_number: str) -> int:
    forget_cached_clients()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return api.get("/api/v1/members/lookup", {"member_number": member_number}).status_code


def create_through_admin(admin_client: Any, **fields: Any) -> Any:
    data = {
        "name": "Kassa Stockholm",
        "scopes": ["members:read", "purchases:write"],
        "markets": [Market.objects.get(code="SE").pk],
        "rate_per_minute": "",
        "expires_at_0": "",
        "expires_at_1": "",
        **fields,
    }
    return admin_client.post(ADD + "add/", data, follow=True)


def test_the_add_form_offers_scopes_as_checkboxes(admin_client, demo):
    response = admin_client.get(ADD + "add/")
    assert response.status_code == 200
    content = response.content.decode()
    for scope in SCOPES:
        assert f'type="checkbox" name="scopes" value="{scope}"' in content
    assert "key_digest" not in content


def assert_kept_nowhere(admin_client: Any, response: Any, raw: str) -> None:
    """The raw key is in no message, cookie, session, log entry or later page."""
    assert not keys_in(response)
    assert all(raw not in morsel.value for morsel in response.cookies.values())
    assert all(raw not in morsel.value for morsel in admin_client.cookies.values())
    session = admin_client.session
    assert all(raw not in repr(value) for value in session.values())
    assert raw not in session.encode(dict(session.items()))
    assert not LogEntry.objects.filter(change_message__contains=raw[-20:]).exists()
    assert not LogEntry.objects.filter(object_repr__contains=raw[-20:]).exists()
    for page in (ADD, ADD + "add/", "/admin/"):
        assert raw not in admin_client.get(page).content.decode()


def test_a_new_client_shows_its_key_once_and_stores_only_the_digest(admin_client, make_member):
    member = make_member()
    response = create_through_admin(admin_client)
    assert response.status_code == 200
    assert response.redirect_chain == []  # the answer to the POST itself: no redirect
    content = response.content.decode()
    [raw] = KEY.findall(content)  # shown on the one page that answers the save
    assert "will not be shown again" in content
    assert "no-store" in response["Cache-Control"]
    client = ApiClient.objects.get(name="Kassa Stockholm")
    assert client.key_digest == key_digest(raw) and raw.startswith(client.key_prefix)
    assert client.key_digest not in content
    assert client.scopes == ["members:read", "purchases:write"]
    assert [m.code for m in client.markets.all()] == ["SE"]
    stored = [
        str(value) for value in ApiClient.objects.filter(pk=client.pk).values().get().values()
    ]
    assert raw not in stored
    assert LogEntry.objects.filter(object_id=str(client.pk), action_flag=ADDITION).exists()

    assert_kept_nowhere(admin_client, response, raw)
    again = admin_client.get(reverse("admin:core_apiclient_change", args=[client.pk]))
    assert raw not in again.content.decode() and client.key_digest not in again.content.decode()

    assert lookup(raw, member.member_number) == 200


def test_an_unknown_scope_is_refused_by_the_form(admin_client, demo):
    response = create_through_admin(admin_client, scopes=["members:read", "root"])
    assert "scopes" in response.context["adminform"].form.errors
    assert not ApiClient.objects.exists()


def test_the_change_form_never_shows_the_digest_and_edits_scopes(admin_client, demo):
    client, raw = api_client_create(name="CRM", scopes=["members:read"])
    url = reverse("admin:core_apiclient_change", args=[client.pk])
    page = admin_client.get(url)
    assert client.key_digest not in page.content.decode()
    assert client.key_prefix in page.content.decode()
    response = admin_client.post(
        url,
        {
            "name": "CRM",
            "scopes": ["members:read", "insights:read"],
            "rate_per_minute": "60",
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 302
    client.refresh_from_db()
    assert client.scopes == ["members:read", "insights:read"] and client.rate_per_minute == 60
    assert client.key_digest == key_digest(raw)


def test_revoke_action_stops_the_key(admin_client, make_member):
    member = make_member()
    client, raw = api_client_create(name="Old POS", scopes=["members:read"])
    assert lookup(raw, member.member_number) == 200
    response = admin_client.post(ADD, {"action": "revoke", "_selected_action": [client.pk]})
    assert response.status_code == 302
    client.refresh_from_db()
    assert client.revoked_at is not None
    assert lookup(raw, member.member_number) == 401


def test_rotate_action_shows_the_new_key_once_and_the_old_one_stops(admin_client, make_member):
    member = make_member()
    client, old = api_client_create(name="Web shop", scopes=["members:read"])
    response = admin_client.post(ADD, {"action": "rotate_key", "_selected_action": [client.pk]})
    assert response.status_code == 200  # the key page itself, not a redirect
    assert "no-store" in response["Cache-Control"]
    [new] = KEY.findall(response.content.decode())
    client.refresh_from_db()
    assert new != old and client.key_digest == key_digest(new)
    assert_kept_nowhere(admin_client, response, new)
    assert lookup(old, member.member_number) == 401
    assert lookup(new, member.member_number) == 200


def test_rotating_only_revoked_clients_shows_no_key_page(admin_client, demo):
    client, _ = api_client_create(name="Gone", scopes=["members:read"])
    admin_client.post(ADD, {"action": "revoke", "_selected_action": [client.pk]})
    response = admin_client.post(ADD, {"action": "rotate_key", "_selected_action": [client.pk]})
    assert response.status_code == 302
    assert not KEY.findall(admin_client.get(ADD).content.decode())


def test_clients_are_not_deleted_in_the_admin(admin_client, demo):
    client, _ = api_client_create(name="Keep", scopes=[])
    url = reverse("admin:core_apiclient_delete", args=[client.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert ApiClient.objects.filter(pk=client.pk).exists()


def test_the_outbox_is_a_read_only_list(admin_client, rf, admin_user, make_member):
    member = make_member()
    event = OutboxEvent.objects.create(
        topic="points.expiring_soon", dedupe_key="k-1", member=member, payload={"points": 5}
    )
    response = admin_client.get(reverse("admin:core_outboxevent_changelist"))
    assert response.status_code == 200 and "k-1" in response.content.decode()
    url = reverse("admin:core_outboxevent_change", args=[event.pk])
    assert admin_client.post(url, {"topic": "x"}).status_code == 403
    request = rf.get("/")
    request.user = admin_user
    model_admin = admin.site._registry[OutboxEvent]
    assert not (
        model_admin.has_add_permission(request) or model_admin.has_delete_permission(request)
    )


def test_celery_beat_keeps_its_admin(admin_client):
    assert admin_client.get("/admin/django_celery_beat/periodictask/").status_code == 200
