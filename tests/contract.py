"""The response contract, checked: every answer the API tests receive
through the test client is what the OpenAPI document says.

The document is the one /api/schema/ serves, generated once per test run.
For each response under /api/v1/:

- the operation is found from the method and the path (matched against the
  document's path templates; HEAD is checked as GET);
- its status must be documented for that operation;
- its content type must be one the operation documents for that status;
- a JSON body (application/json or application/problem+json) must match the
  documented schema, with no field the schema does not name; a problem's
  `status` must be the HTTP status. Binary bodies (the QR codes) are
  checked for their content type only.

A path under /api/v1/ that names no operation (a 404 for an unknown path,
a 405 for a method the resource lacks) must answer a 4xx problem that
matches the Problem schema. Anything else raises AssertionError naming the
operation, the status and what did not match.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from drf_spectacular.generators import SchemaGenerator
from jsonschema import FormatChecker
from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker
from rest_framework.test import APIClient

API_PREFIX = "/api/v1/"
PROBLEM = "application/problem+json"
JSON_TYPES = ("application/json", PROBLEM)
NO_BODY_METHODS = ("HEAD",)


def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc)


FORMATS = FormatChecker()
FORMATS.checkers = {**oas30_format_checker.checkers}
FORMATS.checks("uri")(_uri)


def _normalize(schema: Any) -> Any:
    """The document's schemas as the validator reads them.

    drf-spectacular writes a nullable reference in OpenAPI 3.0 as
    `{"allOf": [{"$ref": ...}], "nullable": true}`; a validator applies
    `nullable` only next to `type`, so it becomes `anyOf` [null, the
    reference]. Nothing else changes."""
    if isinstance(schema, list):
        return [_normalize(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _normalize(value) for key, value in schema.items()}
    if out.get("nullable") is True and "type" not in out and "allOf" in out:
        rest = {key: value for key, value in out.items() if key != "nullable"}
        return {"anyOf": [{"enum": [None]}, rest]}
    return out


def _closed(components: dict[str, Any]) -> dict[str, Any]:
    """Component objects admit no field they do not name: a body with a
    field the serializer lacks is a mismatch as much as one without."""
    out = copy.deepcopy(components)
    for schema in out.get("schemas", {}).values():
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
        ):
            schema["additionalProperties"] = False
    return out


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.spec.get('operationId', '?')} ({self.method} {self.template})"


class Contract:
    """The OpenAPI document, ready to check responses against."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = _normalize(_closed(document.get("components", {})))
        self.operations: list[Operation] = []
        for template, item in document["paths"].items():
            pattern = re.compile(
                "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
            )
            for method, spec in item.items():
                if method in ("get", "put", "post", "patch", "delete"):
                    self.operations.append(Operation(method.upper(), template, pattern, spec))
        # Literal segments win over parameters (members/lookup before members/{n}).
        self.operations.sort(key=lambda op: (op.template.count("{"), op.template))
        self._validators: dict[str, OAS30ReadValidator] = {}
        self._lock = threading.Lock()

    # -- finding the operation --------------------------------------------

    def templates_for(self, path: str) -> list[Operation]:
        """The operations of the first path template the path matches."""
        for operation in self.operations:
            if operation.pattern.match(path):
                return [op for op in self.operations if op.template == operation.template]
        return []

    def operation(self, method: str, path: str) -> Operation | None:
        method = "GET" if method == "HEAD" else method
        return next((op for op in self.templates_for(path) if op.method == method), None)

    def operation_by_id(self, operation_id: str) -> Operation:
        return next(op for op in self.operations if op.spec.get("operationId") == operation_id)

    # -- validating ---------------------------------------------------------

    def _validator(self, schema: dict[str, Any]) -> OAS30ReadValidator:
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            validator = self._validators.get(key)
            if validator is None:
                root = {"components": self.components, "allOf": [_normalize(schema)]}
                validator = OAS30ReadValidator(root, format_checker=FORMATS)
                self._validators[key] = validator
        return validator

    def body_errors(self, schema: dict[str, Any], body: Any) -> str | None:
        errors = list(self._validator(schema).iter_errors(body))
        if not errors:
            return None
        lines = []
        for error in ([best_match(errors)] + errors)[:4]:
            where = "/".join(str(p) for p in error.absolute_path) or "(body)"
            line = f"at {where}: {error.message}"
            if line not in lines:
                lines.append(line)
        return "; ".join(lines)

    def check(
        self,
        *,
        method: str,
        path: str,
        status: int,
        content_type: str | None,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Raise AssertionError unless this answer is what the document says."""
        if not path.startswith(API_PREFIX):
            return  # the admin, /health/, the schema itself: not the API's contract
        media = (content_type or "").split(";")[0].strip().lower()
        operation = self.operation(method, path)
        if operation is None:
            self._check_no_operation(method, path, status, media, body)
            return
        where = f"{operation.name} answered {status}"
        responses = operation.spec.get("responses", {})
        documented = responses.get(str(status))
        assert documented is not None, (
            f"{where}: status {status} is not documented (documented: "
            f"{', '.join(sorted(responses))}); body: {body[:300]!r}"
        )
        for name, header in (documented.get("headers") or {}).items():
            if header.get("required") and headers is not None:
                assert any(h.lower() == name.lower() for h in headers), (
                    f"{where}: the documented header {name} is missing"
                )
        content = documented.get("content")
        if not content:
            assert not body, f"{where}: documented without a body, but has {body[:300]!r}"
            return
        assert media in content, (
            f"{where}: content type {content_type!r} is not documented "
            f"(documented: {', '.join(content)})"
        )
        if method in NO_BODY_METHODS or media not in JSON_TYPES:
            return  # no body to read, or a binary one (QR codes): the type is the contract
        parsed = self._json(where, body)
        problem = self.body_errors(content[media].get("schema", {}), parsed)
        assert problem is None, (
            f"{where}: the body does not match the schema: {problem}; body: {body[:500]!r}"
        )
        if media == PROBLEM:
            assert parsed.get("status") == status, (
                f"{where}: the problem's status {parsed.get('status')} is not the HTTP status"
            )

    def _check_no_operation(
        self, method: str, path: str, status: int, media: str, body: bytes
    ) -> None:
        known = self.templates_for(path)
        where = (
            f"{method} {path} (no such operation; the path has "
            f"{', '.join(op.method for op in known) or 'no template'}) answered {status}"
        )
        assert 400 <= status < 500, f"{where}: expected a 4xx problem"
        assert media == PROBLEM, f"{where}: content type {media!r}, expected {PROBLEM}"
        if method in NO_BODY_METHODS:
            return
        parsed = self._json(where, body)
        problem = self.body_errors({"$ref": "#/components/schemas/Problem"}, parsed)
        assert problem is None, f"{where}: the body is not a Problem: {problem}"
        assert parsed.get("status") == status, f"{where}: the problem's status is not {status}"

    @staticmethod
    def _json(where: str, body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError as exc:
            raise AssertionError(f"{where}: the body is not JSON ({exc}): {body[:300]!r}") from None

    def check_response(self, response: Any) -> None:
        """Check a Django test client response."""
        request = response.request
        if getattr(response, "streaming", False):
            # Read the whole stream to check it, then hand it back to the test.
            chunks = list(response.streaming_content)
            response.streaming_content = chunks
            content = b"".join(chunks)
        else:
            content = response.content
        self.check(
            method=request["REQUEST_METHOD"].upper(),
            path=request["PATH_INFO"],
            status=response.status_code,
            content_type=response.get("Content-Type"),
            body=content,
            headers=dict(response.headers),
        )


_contract: Contract | None = None
_contract_lock = threading.Lock()


def openapi_document() -> dict[str, Any]:
    """The document /api/schema/ serves, as JSON."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(schema, default=str))


def contract() -> Contract:
    """The contract of this test run: the document is generated once."""
    global _contract
    with _contract_lock:
        if _contract is None:
            _contract = Contract(openapi_document())
        return _contract


class ContractClient(APIClient):
    """The API test client: every answer it receives is checked against the
    OpenAPI document (see the module's docstring)."""

    def request(self, **kwargs: Any) -> Any:
        response = super().request(**kwargs)
        contract().check_response(response)
        return response
