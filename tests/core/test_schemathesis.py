"""Schemathesis against the running app (its WSGI application, in process):
every operation of the OpenAPI document the app serves at /api/schema/,
with data generated from the document (valid, and invalid on purpose),
its paths filled with real identifiers (a seeded member with points, their
card, a voucher, a held redemption, a webhook) so that the deep code runs
rather than a 404. Any server error, or an answer whose status, content
type, headers or body the document does not describe, fails the test.

Half the generated bodies also get real identifiers in the fields that
name things (member, store, market, reward, the original receipt), so that
the rest of the body reaches the services. Each case runs in a savepoint
that is rolled back, so an erasure or a captured hold does not take the
identifiers away from the next case."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz import Seeded, seed

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
APP = WSGIHandler()


@pytest.fixture(scope="module")
def schema(django_db_blocker: Any) -> Any:
    with django_db_blocker.unblock():
        return schemathesis.openapi.from_wsgi("/api/schema/", APP)


def operations() -> list[tuple[str, str]]:
    """(method, path) of every operation: read from the URLs' document, so
    that a new route is fuzzed without a change here."""
    from tests.contract import contract

    return sorted(
        (method.upper(), path)
        for path, item in contract().document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )


@pytest.fixture
def in_test_transaction() -> Iterator[None]:
    """The app runs in this test's transaction, as Django's test client
    does it: no connection is closed at the start or end of a request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(api: Any, make_member: Any) -> Seeded:
    return seed(api, make_member)


def path_parameters(path: str, seeded: Seeded) -> dict[str, str]:
    filled = seeded.path(path)
    names = re.findall(r"\{([^}]+)\}", path)
    values = re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(path)), filled)
    assert values is not None
    return dict(zip(names, values.groups(), strict=True))


def with_real_identifiers(body: dict[str, Any], seeded: Seeded) -> dict[str, Any]:
    """The generated body with the fields that name things (the member, the
    store, the market, a reward, the original receipt, a recent time) set to
    real ones, so that the rest of it reaches the services."""
    from datetime import timedelta

    from django.utils import timezone

    real: dict[str, Any] = {
        "member": {"member_number": seeded.member_number},
        "store_code": "SE-001",
        "currency": "SEK",
        "market": "SE",
        "reward": "voucher-50",
        "original": {"store_code": "SE-001", "receipt_id": "R-FUZZ-0"},
        "occurred_at": (timezone.now() - timedelta(minutes=5)).isoformat(),
    }
    return {key: real.get(key, value) for key, value in body.items()}


@pytest.mark.parametrize(("method", "path"), operations(), ids=lambda value: str(value))
@settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    schema: Any,
    api: Any,
    seeded: Seeded,
    in_test_transaction: None,
    method: str,
    path: str,
    data: st.DataObject,
) -> None:
    operation = schema[path][method]
    fixed = {
        "path_parameters": path_parameters(path, seeded),
        "headers": {"Authorization": f"Api-Key {api.raw_key}"},
    }
    case = data.draw(
        st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, **fixed),
            operation.as_strategy(GenerationMode.NEGATIVE, **fixed),
        )
    )
    if isinstance(case.body, dict) and data.draw(st.booleans(), label="real identifiers in body"):
        case.body = with_real_identifiers(case.body, seeded)
    with transaction.atomic():
        response = case.call()
        case.validate_response(response, checks=CHECKS)
        transaction.set_rollback(True)
