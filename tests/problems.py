"""Assertions on problem+json answers, shared by the HTTP tests."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of API.md with this status and code."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"] == PROBLEM, response["Content-Type"]
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["type"] == "about:blank", body
    for field in ("title", "detail"):
        assert isinstance(body[field], str) and body[field], body
    assert "Traceback" not in response.content.decode(), body
    if "errors" in body:
        assert isinstance(body["errors"], dict) and body["errors"], body
        for messages in body["errors"].values():
            assert isinstance(messages, list) and all(isinstance(m, str) for m in messages), body
    return body
