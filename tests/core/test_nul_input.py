"""A NUL character (U+0000) anywhere in a request answers 400
validation_error on every route: PostgreSQL's text and jsonb cannot hold
it, and left to a query it failed with 500. The JSON parser refuses it in
any key or string of the body, the middleware in the URL and the headers."""

from __future__ import annotations

import uuid
from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from core.http import NUL_MESSAGE, nul_paths
from core.models import IdempotencyRecord
from journeys.models import ActivityEvent
from loyalty.models import LedgerEntry
from members.models import Member
from tests.helpers import account, assert_problem, purchase_body

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events"


def post_json(api, path, body, **extra):
    # orjson writes U+0000 as the escape \u0000, as any client's encoder does.
    return api.generic("POST", path, orjson.dumps(body), content_type="application/json", **extra)


def event_body(member, properties):
    return {
        "member": {"member_number": member.member_number},
        "type": "profile_completed",
        "occurred_at": (timezone.now() - timedelta(minutes=2)).isoformat(),
        "properties": properties,
    }


@pytest.mark.parametrize(
    ("properties", "path"),
    [
        ({"sou\x00rce": "app"}, "properties.sou\\u0000rce"),
        ({"source": "a\x00pp"}, "properties.source"),
        ({"device": {"os": ["ios", "17\x00.1"]}}, "properties.device.os.1"),
        ({"device": {"o\x00s": {"name": "ios"}}}, "properties.device.o\\u0000s"),
    ],
)
def test_an_event_with_a_nul_in_its_properties_answers_validation_error(
    journey_on, api, make_member, properties, path
):
    member = make_member()
    response = post_json(api, EVENTS, event_body(member, properties))
    body = assert_problem(response, 400, "validation_error")
    assert body["errors"] == {path: [NUL_MESSAGE]}
    assert not ActivityEvent.objects.filter(member=member).exists()
    assert account(member) == (0, 0)


def test_an_event_with_a_nul_and_an_idempotency_key_stores_nothing(journey_on, api, make_member):
    member = make_member()
    key = uuid.uuid4().hex
    response = post_json(api, EVENTS, event_body(member, {"x": "\x00"}), HTTP_IDEMPOTENCY_KEY=key)
    assert_problem(response, 400, "validation_error")
    assert not IdempotencyRecord.objects.filter(key=key).exists()


def test_a_nul_in_a_purchase_line_answers_validation_error(api, make_member):
    member = make_member()
    body = purchase_body(member.member_number, "R-NUL-1")
    body["lines"][0]["sku\x00"] = "x"
    problem = assert_problem(post_json(api, "/api/v1/purchases", body), 400, "validation_error")
    # Refused by the parser, before a serializer reads it (as an unknown field, say).
    assert problem["errors"] == {"lines.0.sku\\u0000": [NUL_MESSAGE]}
    assert not LedgerEntry.objects.filter(member=member).exists()


def test_a_nul_in_an_enrolment_key_answers_validation_error(api):
    body = {"market": "SE", "email": "nul@example.se", "consents": {"profil\x00ing": True}}
    problem = assert_problem(post_json(api, "/api/v1/members", body), 400, "validation_error")
    assert problem["errors"] == {"consents.profil\\u0000ing": [NUL_MESSAGE]}
    assert not Member.objects.filter(email="nul@example.se").exists()


def test_a_nul_in_the_idempotency_key_answers_validation_error(api, make_member):
    member = make_member()
    response = post_json(
        api,
        f"/api/v1/members/{member.member_number}/adjustments",
        {"points": 100, "reason": "goodwill"},
        HTTP_IDEMPOTENCY_KEY="key-\x00-1",
    )
    body = assert_problem(response, 400, "validation_error")
    assert "Idempotency-Key" in body["errors"]
    assert account(member) == (0, 0)
    assert not IdempotencyRecord.objects.exists()


def test_a_nul_in_any_header_of_an_api_call_answers_validation_error(api, make_member):
    member = make_member()
    response = api.get(f"/api/v1/members/{member.member_number}", HTTP_X_CLIENT_TRACE="a\x00b")
    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["X-Client-Trace"]


def test_a_nul_in_a_webhook_event_list_answers_validation_error(api):
    body = {"url": "https://crm.example/hooks", "events": ["points.earned\x00"]}
    problem = assert_problem(post_json(api, "/api/v1/webhooks", body), 400, "validation_error")
    assert problem["errors"] == {"events.0": [NUL_MESSAGE]}


def test_nul_paths_finds_every_nul_and_nothing_else():
    data = {"a": ["ok", "n\x00"], "k\x00": {"deep": [{"x": "\x00"}]}, "n": 1, "b": None}
    assert nul_paths(data) == ["a.1", "k\\u0000", "k\\u0000.deep.0.x"]
    assert nul_paths({"clean": ["text", 1, 2.5, True, None, {"x": "y"}]}) == []
    assert nul_paths("\x00") == ["non_field_errors"]
