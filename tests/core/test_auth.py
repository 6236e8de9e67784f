"""API-key authentication, scopes, hashed storage and the per-client rate limit."""

import hashlib
import time
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import SCOPES, ApiClient
from core.services import api_client_create, api_client_revoke, api_client_rotate
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db

LOOKUP = "/api/v1/members/lookup"


@pytest.fixture
def anna_number(demo):
    from members.models import Member

    return Member.objects.get(email="anna.berg@example.se").member_number


def get_with(authorization, member_number):
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client.get(LOOKUP, {"member_number": member_number})


def assert_unauthenticated(response):
    body = assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Api-Key"
    return body


def test_a_valid_key_is_accepted(make_api, anna_number):
    api = make_api(scopes=["members:read"])
    response = get_with(f"Api-Key {api.raw_key}", anna_number)
    assert response.status_code == 200
    assert response.json()["member_number"] == anna_number


def test_no_authorization_header_answers_not_authenticated(anna_number):
    assert_unauthenticated(get_with(None, anna_number))


@pytest.mark.parametrize("scheme", ["Bearer", "Basic", "Token", "ApiKey", "Api-Key:"])
def test_a_wrong_scheme_answers_not_authenticated(make_api, anna_number, scheme):
    api = make_api(scopes=["members:read"])
    assert_unauthenticated(get_with(f"{scheme} {api.raw_key}", anna_number))


def test_the_scheme_is_case_insensitive_as_http_says(make_api, anna_number):
    api = make_api(scopes=["members:read"])
    assert get_with(f"api-key {api.raw_key}", anna_number).status_code == 200
    assert get_with(f"API-KEY {api.raw_key}", anna_number).status_code == 200


@pytest.mark.parametrize("authorization", ["Api-Key", "Api-Key ", "Api-Key   ", "", " "])
def test_an_empty_key_answers_not_authenticated(anna_number, authorization):
    response = get_with(authorization, anna_number)
    assert_unauthenticated(response)


def test_the_raw_key_alone_without_a_scheme_answers_not_authenticated(make_api, anna_number):
    api = make_api(scopes=["members:read"])
    assert_unauthenticated(get_with(api.raw_key, anna_number))


@pytest.mark.parametrize(
    "key",
    [
        "lj_00000000_" + "A" * 43,
        "nonsense",
        "x" * 129,
        "x" * 5000,
        "lj_ünïcödé",
    ],
)
def test_an_unknown_key_answers_not_authenticated(demo, anna_number, key):
    assert_unauthenticated(get_with(f"Api-Key {key}", anna_number))


def test_a_key_with_one_character_changed_answers_not_authenticated(make_api, anna_number):
    api = make_api(scopes=["members:read"])
    raw = api.raw_key
    tampered = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    assert_unauthenticated(get_with(f"Api-Key {tampered}", anna_number))


def test_an_expired_key_answers_not_authenticated(make_api, anna_number):
    api = make_api(scopes=["members:read"], expires_at=timezone.now() - timedelta(seconds=1))
    assert_unauthenticated(api.get(LOOKUP, {"member_number": anna_number}))


def test_a_key_that_expires_later_works_until_then(make_api, anna_number):
    api = make_api(scopes=["members:read"], expires_at=timezone.now() + timedelta(hours=1))
    assert api.get(LOOKUP, {"member_number": anna_number}).status_code == 200
    ApiClient.objects.filter(pk=api.api_client.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    from core.auth import forget_cached_clients

    forget_cached_clients()  # the two-second client cache of config/auth.py
    assert_unauthenticated(api.get(LOOKUP, {"member_number": anna_number}))


def test_a_revoked_key_answers_not_authenticated_at_once(make_api, anna_number):
    api = make_api(scopes=["members:read"])
    assert api.get(LOOKUP, {"member_number": anna_number}).status_code == 200
    api_client_revoke(client=api.api_client)
    assert_unauthenticated(api.get(LOOKUP, {"member_number": anna_number}))
    assert ApiClient.objects.get(pk=api.api_client.pk).revoked_at is not None


def test_a_rotated_key_replaces_the_old_one(make_api, anna_number):
    api = make_api(scopes=["members:read"])
    new_raw = api_client_rotate(client=api.api_client)
    assert_unauthenticated(api.get(LOOKUP, {"member_number": anna_number}))
    assert get_with(f"Api-Key {new_raw}", anna_number).status_code == 200


def test_the_error_body_does_not_echo_the_key(make_api, anna_number):
    api = make_api(scopes=["members:read"])
    api_client_revoke(client=api.api_client)
    response = api.get(LOOKUP, {"member_number": anna_number})
    assert_unauthenticated(response)
    assert api.raw_key not in response.content.decode()


def test_a_401_comes_before_validating_the_request(demo):
    response = APIClient().post("/api/v1/members", b"{broken", content_type="application/json")
    assert_unauthenticated(response)


@pytest.mark.parametrize(
    "method, path, scope",
    [
        ("get", "/api/v1/members/lookup?member_number={n}", "members:read"),
        ("get", "/api/v1/members/{n}", "members:read"),
        ("patch", "/api/v1/members/{n}", "members:write"),
        ("post", "/api/v1/members", "members:write"),
        ("post", "/api/v1/members/{n}/cards", "members:write"),
        ("delete", "/api/v1/members/{n}/cards/9752000000000000", "members:write"),
    ],
)
def test_a_key_without_the_scope_answers_permission_denied(
    make_api, anna_number, method, path, scope
):
    others = [s for s in SCOPES if s != scope]
    api = make_api(scopes=others)
    response = (
        getattr(api, method)(path.format(n=anna_number), {}, format="json")
        if method != "get"
        else api.get(path.format(n=anna_number))
    )
    body = assert_problem(response, 403, "permission_denied")
    assert scope in body["detail"]
    # The same call with the scope passes the permission check.
    allowed = make_api(scopes=[scope])
    response = (
        getattr(allowed, method)(path.format(n=anna_number), {}, format="json")
        if method != "get"
        else allowed.get(path.format(n=anna_number))
    )
    assert response.status_code != 403


def test_a_key_without_any_scope_answers_permission_denied(make_api, anna_number):
    api = make_api(scopes=[])
    assert_problem(api.get(LOOKUP, {"member_number": anna_number}), 403, "permission_denied")


def test_keys_are_stored_hashed_and_the_raw_key_is_nowhere_in_the_database(make_api, anna_number):
    api = make_api(scopes=["members:read"])
    raw = api.raw_key
    api.get(LOOKUP, {"member_number": anna_number})
    api.post(
        "/api/v1/members",
        {"market": "SE", "email": "h@example.se"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="hash-check",
    )
    row = ApiClient.objects.get(pk=api.api_client.pk)
    assert row.key_digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith(row.key_prefix) and len(row.key_prefix) < len(raw) // 3
    secret = raw[len(row.key_prefix) :]
    for model in apps.get_models():
        for values in model.objects.all().values():
            text = repr(values)
            assert raw not in text and secret not in text, model


def test_keys_carry_enough_randomness(make_api):
    _, raw_one = api_client_create(name="a", scopes=[])
    _, raw_two = api_client_create(name="b", scopes=[])
    assert raw_one != raw_two
    assert len(raw_one) >= 40  # 256 bits in url-safe base64 is 43 characters


def test_the_rate_limit_answers_rate_limited_with_retry_after(make_api, anna_number):
    if time.time() % 60 > 55:  # the limit counts per clock minute: start a fresh one
        time.sleep(60 - time.time() % 60 + 0.1)
    api = make_api(scopes=["members:read"], rate_per_minute=3)
    for _ in range(3):
        assert api.get(LOOKUP, {"member_number": anna_number}).status_code == 200
    response = api.get(LOOKUP, {"member_number": anna_number})
    body = assert_problem(response, 429, "rate_limited")
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert str(retry_after) in body["detail"]


def test_the_rate_limit_is_per_client(make_api, anna_number):
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60 + 0.1)
    limited = make_api(scopes=["members:read"], rate_per_minute=1)
    other = make_api(scopes=["members:read"], rate_per_minute=1)
    assert limited.get(LOOKUP, {"member_number": anna_number}).status_code == 200
    assert_problem(limited.get(LOOKUP, {"member_number": anna_number}), 429, "rate_limited")
    assert other.get(LOOKUP, {"member_number": anna_number}).status_code == 200


def test_head_needs_the_scope_of_get(make_api, anna_number):
    # HEAD runs the GET handler: without the check it told any key whether
    # a member exists (200 or 404).
    no_read = make_api(scopes=["purchases:write"])
    for response in (
        no_read.head(f"/api/v1/members/{anna_number}"),
        no_read.head(LOOKUP, {"email": "anna.berg@example.se"}),
        no_read.head(LOOKUP, {"email": "nobody@example.se"}),
    ):
        assert response.status_code == 403
        assert response["Content-Type"] == "application/problem+json"
    reader = make_api(scopes=["members:read"])
    assert reader.head(f"/api/v1/members/{anna_number}").status_code == 200
    assert reader.head("/api/v1/members/1999999999").status_code == 404
