"""Property: no body breaks a write. Every write route of the OpenAPI
document (POST, PATCH, DELETE; a new route is covered by being documented)
gets generated bodies: any JSON (unicode with NUL, numbers past 64 bits,
floats, deep nesting, wrong types), objects with the route's own field names
and such values, and bytes that are not JSON at all, with or without an
Idempotency-Key. Its paths name real objects (a member with points, their
card, a voucher, a held redemption, a webhook), so the deep code runs.

Every answer is below 500 and matches the document (the contract client
checks it); a 4xx leaves the ledger (entries, lots, movements, accounts),
the members and their cards exactly as they were. Each example runs in a
savepoint that is rolled back, so every example starts from the same club."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import body_fields, mutate, places, seed, snapshot, valid_bodies, write_operations

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

OPERATIONS = write_operations()

# Text of any code point but the surrogates (which UTF-8 cannot carry),
# NUL included, and values the services read: markets, stores, codes.
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
    st.sampled_from(
        [
            "",
            "\x00",
            "a\x00b",
            "SE",
            "SE-001",
            "SEK",
            "coffee",
            "voucher-50",
            "2026-11-30T12:00:00+01:00",
            "9" * 300,
            "-1",
            "1e999",
            "999999999999.99",
            "NaN",
        ]
    ),
)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**31 - 2, max_value=2**31 + 2),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=10**30, max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
NOT_JSON = st.one_of(
    st.binary(max_size=40),
    st.integers(min_value=100, max_value=1500).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([b"", b"NaN", b'{"a": Infinity}', b'{"a": 1e400}', b'"\\ud800"', b"{"]),
)


# What a mutation puts in a valid body: values known to break naive code
# (NUL, 32- and 64-bit edges, huge numbers) half the time, else any JSON.
NASTY = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        {"k\x00": "v"},
        {"k": "\x00"},
        ["\x00"],
        2**31,
        2**63,
        -(2**63) - 1,
        10**30,
        1e308,
        -1,
        0,
        "",
        "9" * 300,
        [],
        {},
        None,
        True,
    ]
)


@st.composite
def mutated(draw: Any, valid: Any) -> Any:
    """A valid body with one or two of its parts replaced, removed or given
    a field."""
    body = valid
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        at = draw(st.sampled_from(places(body)))
        how = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        junk = draw(st.one_of(NASTY, JSON))
        body = mutate(body, at, how, junk, draw(st.one_of(st.just("k\x00"), TEXT)))
    return body


def bodies(fields: list[str], valid: Any) -> st.SearchStrategy[bytes]:
    """Mostly a valid body with one part gone wrong (so the rest passes and
    the junk reaches the code behind the serializer), else any JSON, objects
    of the route's field names with any values, or not JSON."""
    keys = st.one_of(st.sampled_from(fields), TEXT) if fields else TEXT
    as_json = st.one_of(
        JSON,
        st.dictionaries(keys, JSON, max_size=6),
        st.fixed_dictionaries({}, optional=dict.fromkeys(fields, JSON)) if fields else JSON,
    )

    def encode(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False).encode()

    return st.one_of(
        mutated(valid).map(encode),
        mutated(valid).map(encode),
        mutated(valid).map(encode),
        as_json.map(encode),
        NOT_JSON,
    )


IDEMPOTENCY_KEYS = st.one_of(
    st.none(),
    st.uuids().map(str),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=300),
)
CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 6 + ["text/plain", "application/x-www-form-urlencoded"]
)


@pytest.fixture
def seeded(api, make_member):
    return seed(api, make_member)


def test_the_valid_bodies_are_accepted(api, seeded, journey_on):
    """The baselines the fuzz mutates pass as they are (else the fuzz would
    mostly meet the serializers); each in a savepoint rolled back."""
    for (method, template), body in valid_bodies(seeded).items():
        with transaction.atomic():
            response = api.generic(
                method,
                seeded.path(template),
                json.dumps(body),
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
            )
            assert response.status_code in (200, 201), (method, template, response.content)
            transaction.set_rollback(True)


def test_every_write_route_of_the_document_is_fuzzed():
    routes = {(method, template) for method, template, _ in OPERATIONS}
    assert ("POST", "/api/v1/events") in routes
    assert ("PATCH", "/api/v1/members/{member_number}") in routes
    assert ("DELETE", "/api/v1/webhooks/{webhook_id}") in routes
    assert ("POST", "/api/v1/vouchers/{code}/redeem") in routes
    assert len(routes) >= 17


@pytest.mark.parametrize(
    ("method", "template", "spec"),
    OPERATIONS,
    ids=[f"{method} {template}" for method, template, _ in OPERATIONS],
)
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_no_body_answers_a_server_error_and_a_refusal_changes_nothing(
    journey_on, api, seeded, method: str, template: str, spec: dict[str, Any], data: st.DataObject
):
    path = seeded.path(template)
    valid = valid_bodies(seeded).get((method, template), {})
    body = data.draw(bodies(body_fields(spec), valid), label="body")
    content_type = data.draw(CONTENT_TYPES, label="content type")
    key = data.draw(IDEMPOTENCY_KEYS, label="Idempotency-Key")
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    with transaction.atomic():
        before = snapshot()
        # The contract client raises if the answer is not what the document says.
        response = api.generic(method, path, body, content_type=content_type, **headers)
        assert response.status_code < 500, (response.status_code, response.content[:500])
        if 400 <= response.status_code < 500:
            assert snapshot() == before, f"{method} {path} answered {response.status_code}"
        transaction.set_rollback(True)


def test_the_seeded_identifiers_reach_the_deep_code(api, seeded):
    """The fuzz's paths name real objects: with a valid body, each answers
    what its object allows, not 404."""
    redeem = api.post(
        seeded.path("/api/v1/vouchers/{code}/redeem"),
        {"store_code": "SE-001", "receipt_id": "R-FUZZ"},
        format="json",
    )
    assert redeem.status_code == 200, redeem.content
    use = api.post(
        seeded.path("/api/v1/members/{member_number}/benefits/{code}/use"),
        {"store_code": "SE-001"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )
    assert use.status_code in (200, 201), use.content
    capture = api.post(seeded.path("/api/v1/redemptions/{redemption_id}/capture"))
    assert capture.status_code == 200, capture.content
    gone = api.delete(seeded.path("/api/v1/webhooks/{webhook_id}"))
    assert gone.status_code == 204
