"""The response contract (tests/contract.py) and the errors the OpenAPI
document gives every operation (core/schema.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from core.errors import problem_codes
from tests.contract import PROBLEM, Contract, ContractClient, contract

MEMBER = "/api/v1/members/1000000017"
PROBLEM_REF = "#/components/schemas/Problem"


def member_body(**changes: Any) -> dict[str, Any]:
    body = {
        "member_number": "1000000017",
        "cards": ["9752160236960996"],
        "status": "active",
        "market": "SE",
        "first_name": "Anna",
        "last_name": "Berg",
        "email": "anna@example.se",
        "phone": None,
        "birth_date": None,
        "language": "sv",
        "channel": "store",
        "enrolled_at": "2026-11-29T12:00:00+00:00",
        "consents": {"marketing_email": True, "marketing_sms": False, "profiling": False},
        "tier": {"code": "member", "name": "Medlem", "valid_until": None},
        "points": {"balance": 0, "pending": 0, "expiring": {"points": 10, "on": "2028-11-30"}},
    }
    body.update(changes)
    return body


def problem_body(status: int, code: str, **changes: Any) -> dict[str, Any]:
    return {
        "type": "about:blank",
        "title": "T",
        "status": status,
        "code": code,
        "detail": "D",
        **changes,
    }


def check(
    status: int,
    body: Any,
    *,
    method: str = "GET",
    path: str = MEMBER,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    contract().check(
        method=method,
        path=path,
        status=status,
        content_type=content_type,
        body=raw,
        headers=headers,
    )


def rejected(status: int, body: Any, **kwargs: Any) -> str:
    with pytest.raises(AssertionError) as raised:
        check(status, body, **kwargs)
    return str(raised.value)


# -- the validator ------------------------------------------------------------------


def test_a_body_that_matches_passes() -> None:
    check(200, member_body())
    check(
        200,
        member_body(
            email=None,
            phone="+46701234567",
            birth_date="1990-05-01",
            points={"balance": 5, "pending": 0, "expiring": None},
        ),
    )
    check(404, problem_body(404, "not_found"), content_type=PROBLEM)
    check(
        400,
        problem_body(400, "validation_error", errors={"email": ["Not valid."]}),
        content_type=PROBLEM,
    )


@pytest.mark.parametrize(
    "body, expected",
    [
        ({k: v for k, v in member_body().items() if k != "tier"}, "'tier' is a required property"),
        (member_body(status="sleeping"), "'sleeping' is not one of"),
        (
            member_body(points={"balance": "0", "pending": 0, "expiring": None}),
            "is not of type 'integer'",
        ),
        (member_body(email=None, language=None), "language"),
        (member_body(enrolled_at="yesterday"), "is not a 'date-time'"),
        (
            member_body(points={"balance": 0, "pending": 0, "expiring": {"points": 1}}),
            "'on' is a required",
        ),
        (member_body(balance=0), "'balance' was unexpected"),
        ([member_body()], "is not of type 'object'"),
    ],
)
def test_a_body_that_does_not_match_is_rejected_naming_the_operation(body, expected) -> None:
    message = rejected(200, body)
    assert message.startswith("members_read (GET /api/v1/members/{member_number}) answered 200"), (
        message
    )
    assert expected in message, message


def test_a_status_the_operation_does_not_document_is_rejected() -> None:
    message = rejected(409, problem_body(409, "member_exists"), content_type=PROBLEM)
    assert "members_read" in message and "status 409 is not documented" in message, message
    assert "members_update" in rejected(
        409, problem_body(409, "receipt_conflict"), method="PATCH", content_type=PROBLEM
    )


def test_a_code_the_status_does_not_document_is_rejected() -> None:
    message = rejected(404, problem_body(404, "member_inactive"), content_type=PROBLEM)
    assert "answered 404" in message and "'member_inactive' is not one of ['not_found']" in message


def test_a_problem_must_be_a_problem() -> None:
    assert "content type 'application/json' is not documented" in rejected(
        404, problem_body(404, "not_found")
    )
    assert "'detail' is a required property" in rejected(
        404,
        {"type": "about:blank", "title": "T", "status": 404, "code": "not_found"},
        content_type=PROBLEM,
    )
    assert "is not of type 'array'" in rejected(
        400,
        problem_body(400, "validation_error", errors={"email": "Not valid."}),
        content_type=PROBLEM,
    )
    assert "the problem's status 400 is not the HTTP status" in rejected(
        404, problem_body(400, "not_found"), content_type=PROBLEM
    )
    assert "the body is not JSON" in rejected(404, b"<h1>Not found</h1>", content_type=PROBLEM)


def test_documented_headers_must_be_sent() -> None:
    message = rejected(429, problem_body(429, "rate_limited"), content_type=PROBLEM, headers={})
    assert "the documented header Retry-After is missing" in message
    check(
        429, problem_body(429, "rate_limited"), content_type=PROBLEM, headers={"Retry-After": "3"}
    )


def test_binary_answers_are_checked_for_their_content_type() -> None:
    path = "/api/v1/vouchers/LSUM-KNU2-WW9VG/qr.png"
    check(200, b"\x89PNG\r\n", path=path, content_type="image/png")
    message = rejected(200, b"<svg/>", path=path, content_type="image/svg+xml")
    assert (
        "vouchers_qr_png" in message and "content type 'image/svg+xml' is not documented" in message
    )


def test_a_path_that_names_no_operation_answers_a_problem() -> None:
    check(404, problem_body(404, "not_found"), path="/api/v1/nothing", content_type=PROBLEM)
    check(
        405,
        problem_body(405, "method_not_allowed"),
        method="PUT",
        path="/api/v1/members",
        content_type=PROBLEM,
    )
    assert "expected a 4xx problem" in rejected(200, {}, path="/api/v1/nothing")
    assert "the body is not a Problem" in rejected(
        405, {"detail": "no"}, method="PUT", path="/api/v1/members", content_type=PROBLEM
    )


def test_paths_outside_the_api_are_not_checked() -> None:
    check(200, b"<html>", path="/admin/", content_type="text/html")


def test_a_literal_path_wins_over_a_parameter() -> None:
    assert (
        contract().operation("GET", "/api/v1/members/lookup").spec["operationId"]
        == "members_lookup"
    )
    assert contract().operation("GET", MEMBER).spec["operationId"] == "members_read"
    assert contract().operation("HEAD", MEMBER).spec["operationId"] == "members_read"


@pytest.mark.django_db
def test_the_api_clients_of_the_tests_check_every_answer(make_api, monkeypatch) -> None:
    api = make_api()
    assert isinstance(api, ContractClient)
    # A contract that documents nothing for members_read: the client must refuse the answer.
    document = json.loads(json.dumps(contract().document))
    del document["paths"]["/api/v1/members/{member_number}"]["get"]["responses"]["404"]
    monkeypatch.setattr("tests.contract._contract", Contract(document))
    with pytest.raises(AssertionError, match="status 404 is not documented"):
        api.get("/api/v1/members/1999999999")


# -- the document ---------------------------------------------------------------------


def operations() -> list[tuple[str, dict[str, Any]]]:
    return [(op.name, op.spec) for op in contract().operations]


def problem_codes_of(spec: dict[str, Any], status: int) -> list[str]:
    response = spec["responses"][str(status)]
    schema = response["content"][PROBLEM]["schema"]
    assert schema["allOf"][0] == {"$ref": PROBLEM_REF}, schema
    codes = schema["allOf"][1]["properties"]["code"]["enum"]
    for code in codes:  # the description lists the codes
        assert f"`{code}`" in response["description"], response
    return codes


def test_the_document_is_valid_openapi_3() -> None:
    document = contract().document
    assert document["openapi"].startswith("3.")
    validate(document)


@pytest.mark.django_db
def test_the_contract_is_the_document_the_service_serves() -> None:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json() == contract().document


def test_there_are_operations() -> None:
    assert len(operations()) >= 24


@pytest.mark.parametrize(
    "status, code",
    [
        (401, "not_authenticated"),
        (403, "permission_denied"),
        (400, "validation_error"),
        (406, "not_acceptable"),
        (429, "rate_limited"),
    ],
)
def test_every_operation_documents_the_answers_any_call_can_meet(status, code) -> None:
    for name, spec in operations():
        assert str(status) in spec["responses"], f"{name} does not document {status}"
        assert code in problem_codes_of(spec, status), name


def test_who_may_not_call_is_told_how_and_when_to_come_back() -> None:
    for name, spec in operations():
        assert spec["responses"]["401"]["headers"]["WWW-Authenticate"]["required"], name
        assert spec["responses"]["429"]["headers"]["Retry-After"]["required"], name


def test_an_operation_on_a_named_object_documents_not_found() -> None:
    for name, spec in operations():
        if "{" in name:
            assert "not_found" in problem_codes_of(spec, 404), name


def test_an_idempotent_operation_documents_what_a_key_can_answer() -> None:
    keyed = 0
    for name, spec in operations():
        key = next(
            (
                p
                for p in spec.get("parameters", [])
                if p["in"] == "header" and p["name"] == "Idempotency-Key"
            ),
            None,
        )
        if key is None:
            continue
        keyed += 1
        assert "request_in_progress" in problem_codes_of(spec, 409), name
        assert "idempotency_key_reused" in problem_codes_of(spec, 422), name
        assert ("idempotency_key_required" in problem_codes_of(spec, 400)) == key.get(
            "required", False
        ), name
        success = next(r for s, r in spec["responses"].items() if s.startswith("2"))
        assert "Idempotent-Replayed" in success["headers"], name
    # Every POST accepts a key (API.md, Idempotency).
    assert keyed == sum(1 for name, _ in operations() if "(POST " in name)


@pytest.mark.parametrize(
    "operation_id, status, codes",
    [
        ("members_enrol", 409, ["request_in_progress", "member_exists"]),
        ("members_enrol", 422, ["idempotency_key_reused", "unknown_store"]),
        ("members_lookup", 404, ["not_found"]),
        ("members_lookup", 409, ["multiple_matches"]),
        ("purchases_record", 409, ["request_in_progress", "receipt_conflict"]),
        (
            "purchases_record",
            422,
            ["idempotency_key_reused", "unknown_store", "member_inactive", "currency_mismatch"],
        ),
        (
            "returns_record",
            422,
            [
                "idempotency_key_reused",
                "unknown_store",
                "currency_mismatch",
                "return_exceeds_purchase",
                "member_inactive",
            ],
        ),
        (
            "redemptions_create",
            422,
            ["idempotency_key_reused", "member_inactive", "unknown_store", "insufficient_points"],
        ),
        ("redemptions_capture", 409, ["request_in_progress", "hold_expired"]),
        (
            "rewards_claim",
            422,
            [
                "idempotency_key_reused",
                "member_inactive",
                "reward_not_available",
                "insufficient_points",
            ],
        ),
        ("vouchers_redeem", 409, ["request_in_progress", "voucher_used"]),
        (
            "benefits_use",
            422,
            ["idempotency_key_reused", "member_inactive", "unknown_store", "benefit_not_available"],
        ),
    ],
)
def test_the_domain_errors_of_an_operation_are_documented(operation_id, status, codes) -> None:
    spec = contract().operation_by_id(operation_id).spec
    assert sorted(problem_codes_of(spec, status)) == sorted(codes)


def test_the_problem_schema() -> None:
    problem = contract().document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "code", "detail"}
    assert problem["properties"]["errors"] == {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "description": problem["properties"]["errors"]["description"],
    }
    code = problem["properties"]["code"]
    assert code["description"]
    assert code["allOf"] == [{"$ref": "#/components/schemas/ProblemCodeEnum"}]
    enum = contract().document["components"]["schemas"]["ProblemCodeEnum"]["enum"]
    assert enum == [c for c, _ in problem_codes()]
    assert {"validation_error", "not_authenticated", "receipt_conflict", "rate_limited"} <= set(
        enum
    )
