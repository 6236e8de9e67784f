"""Webhook subscriptions through the API: POST, GET, DELETE /api/v1/webhooks."""

from __future__ import annotations

import base64

import pytest

from integrations.models import Webhook
from integrations.webhooks import url_check
from tests.helpers import assert_problem

URL = "/api/v1/webhooks"
BODY = {"url": "https://crm.example/hooks", "events": ["points.earned", "tier.changed"]}


@pytest.fixture
def manager(make_api):
    return make_api(scopes=["webhooks:manage"])


def test_create_answers_the_secret_once_and_list_never(manager):
    response = manager.post(URL, {**BODY, "description": "CRM"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "url", "events", "description", "active", "created_at", "secret"}
    assert body["url"] == BODY["url"] and body["events"] == BODY["events"]
    assert body["description"] == "CRM" and body["active"] is True
    assert body["secret"].startswith("whsec_")
    assert 24 <= len(base64.b64decode(body["secret"].removeprefix("whsec_"))) <= 32

    listed = manager.get(URL)
    assert listed.status_code == 200
    [item] = listed.json()
    assert item["id"] == body["id"] and "secret" not in item
    assert body["secret"] not in listed.content.decode()


def test_all_events(manager):
    response = manager.post(URL, {"url": "https://crm.example/all", "events": ["*"]}, format="json")
    assert response.status_code == 201 and response.json()["events"] == ["*"]


def test_the_same_url_twice_is_a_conflict(manager):
    assert manager.post(URL, BODY, format="json").status_code == 201
    assert_problem(manager.post(URL, BODY, format="json"), 409, "already_exists")


def test_delete(manager):
    webhook_id = manager.post(URL, BODY, format="json").json()["id"]
    response = manager.delete(f"{URL}/{webhook_id}")
    assert response.status_code == 204
    assert manager.get(URL).json() == []
    assert not Webhook.objects.filter(pk=webhook_id).exists()


def test_another_clients_webhook_is_not_found(manager, make_api):
    webhook_id = manager.post(URL, BODY, format="json").json()["id"]
    other = make_api(scopes=["webhooks:manage"])
    assert other.get(URL).json() == []
    assert_problem(other.delete(f"{URL}/{webhook_id}"), 404, "not_found")
    assert_problem(other.delete(f"{URL}/999999999"), 404, "not_found")
    assert Webhook.objects.filter(pk=webhook_id).exists()


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://crm.example/hooks", "events": ["points.earned"]},
        {"url": "not a url", "events": ["points.earned"]},
        {"url": "https://crm.example/hooks", "events": ["points.stolen"]},
        {"url": "https://crm.example/hooks", "events": []},
        {"url": "https://crm.example/hooks", "events": ["*", "points.earned"]},
        {"url": "https://crm.example/hooks", "events": ["*"], "secret": "mine"},
    ],
)
def test_bad_input(manager, body):
    assert_problem(manager.post(URL, body, format="json"), 400, "validation_error")


def test_future_event_names_are_accepted(manager):
    body = {"url": "https://crm.example/p", "events": ["member.erased", "nps.answered"]}
    assert manager.post(URL, body, format="json").status_code == 201


def test_the_scope_is_needed(make_api):
    api = make_api(scopes=["members:read"])
    assert_problem(api.post(URL, BODY, format="json"), 403, "permission_denied")
    assert_problem(api.get(URL), 403, "permission_denied")
    assert_problem(api.delete(f"{URL}/1"), 403, "permission_denied")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
    ],
)
def test_production_refuses_private_addresses(manager, settings, url):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    body = assert_problem(
        manager.post(URL, {"url": url, "events": ["*"]}, format="json"), 400, "validation_error"
    )
    assert "url" in body["errors"]


def test_a_public_address_passes_the_check(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    url_check("https://93.184.215.14/hooks")  # a literal public address: no DNS needed


def test_private_addresses_allowed_when_set(manager, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    body = {"url": "http://127.0.0.1:9/hook", "events": ["*"]}
    assert manager.post(URL, body, format="json").status_code == 201


def test_a_retry_with_the_same_key_gets_the_first_answer(manager):
    first = manager.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = manager.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Webhook.objects.filter(url=BODY["url"]).count() == 1
