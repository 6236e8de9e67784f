"""How the OpenAPI document describes the API: the key scheme, and the
problem+json answers of every operation.

Every operation documents the errors it can answer, each status with the
`Problem` schema narrowed to the codes it can carry:

- what any call can meet: `400 validation_error` (a body too large, or a NUL
  character in the URL, a header or anywhere in the JSON body, is refused for
  every path), `401`, `403`, `429` (when the view authenticates, checks
  scopes, throttles; `429` also counts calls without a valid key per client
  IP), `406` (an `Accept` the view cannot answer), `404 not_found` when the
  path names an object, `503 service_unavailable` (the database does not
  answer);
- what an `Idempotency-Key` brings (the view declares the header with
  `idempotency_key()`): `409 request_in_progress`, `422
  idempotency_key_reused` and, when required, `400 idempotency_key_required`;
- what the view declares itself with `errors(...)`, from the DomainError
  classes its services raise:

    @extend_schema(responses={201: PurchaseOut, **errors(NotFound, ReceiptConflict)})
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from core.errors import (
    PROBLEM_CONTENT_TYPE,
    DomainError,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    NotAcceptable,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestInProgress,
    ServiceUnavailable,
    ValidationFailed,
    problem_codes,
)
from core.http import StrictSerializer

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "core.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; the key is shown once when created.",
        }


class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem document: every error the API answers."""

    type = serializers.CharField(help_text="Always `about:blank`: `code` says what happened.")
    title = serializers.CharField(help_text="A short summary of the code, for people.")
    status = serializers.IntegerField(help_text="The HTTP status of the answer.")
    code = serializers.ChoiceField(
        choices=problem_codes(),
        help_text="Stable and machine-readable: what a client decides on. Each operation "
        "lists the codes each of its error statuses can carry.",
    )
    detail = serializers.CharField(help_text="What went wrong in this call, for people.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="On validation errors: the messages per field (`field` or `field.sub`).",
    )

    class Meta:
        ref_name = "Problem"


class ProblemResponse(OpenApiResponse):
    """An error status an operation declares: the DomainErrors it answers with."""

    def __init__(self, problems: Iterable[type[DomainError]]) -> None:
        self.problems = list(problems)
        super().__init__(response=ProblemSerializer, description=_describe(self.problems))


def errors(*problems: type[DomainError]) -> dict[int, ProblemResponse]:
    """Responses for the DomainErrors a view's services raise, by status:
    `responses={201: PurchaseOut, **errors(NotFound, ReceiptConflict, ...)}`."""
    by_status: dict[int, list[type[DomainError]]] = {}
    for problem in problems:
        by_status.setdefault(problem.status, []).append(problem)
    return {status: ProblemResponse(found) for status, found in by_status.items()}


def idempotency_key(*, required: bool) -> OpenApiParameter:
    """The Idempotency-Key header of a call that accepts (or requires) one."""
    return OpenApiParameter(
        IDEMPOTENCY_HEADER,
        {"type": "string", "minLength": 1, "maxLength": 255},
        OpenApiParameter.HEADER,
        required=required,
        description="1 to 255 characters, kept at least 24 hours per API client: the same key with the "
        "same body replays the first answer (with `Idempotent-Replayed: true`).",
    )


def _describe(problems: Iterable[type[DomainError]]) -> str:
    return "; ".join(f"`{p.code}`: {p.title}" for p in problems)


_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "required": True,
            "description": "`Api-Key`: the scheme to authenticate with.",
        }
    },
    429: {
        "Retry-After": {
            "schema": {"type": "integer"},
            "required": True,
            "description": "Seconds until the next call may pass.",
        }
    },
    503: {
        "Retry-After": {
            "schema": {"type": "integer"},
            "required": True,
            "description": "Seconds to wait before retrying: nothing of the call was done.",
        }
    },
}


class ProblemAutoSchema(AutoSchema):
    """AutoSchema that adds the problem+json answers of every operation, and
    says of every strict request body that it admits no other field (a
    StrictSerializer answers 400 for one)."""

    def _postprocess_serializer_schema(
        self, schema: dict[str, Any], serializer: Any, direction: str
    ) -> dict[str, Any]:
        schema = super()._postprocess_serializer_schema(schema, serializer, direction)
        if direction == "request" and isinstance(serializer, StrictSerializer):
            schema["additionalProperties"] = False
        return schema

    def _idempotency_parameter(self) -> OpenApiParameter | None:
        for parameter in self.get_override_parameters():
            if (
                isinstance(parameter, OpenApiParameter)
                and parameter.name == IDEMPOTENCY_HEADER
                and parameter.location == OpenApiParameter.HEADER
            ):
                return parameter
        return None

    def _common_problems(self) -> list[type[DomainError]]:
        view = self.view
        found: list[type[DomainError]] = [ValidationFailed]
        key = self._idempotency_parameter()
        if key is not None and key.required:
            found.append(IdempotencyKeyRequired)
        if getattr(view, "authentication_classes", None):
            found.append(NotAuthenticated)
        if getattr(view, "permission_classes", None):
            found.append(PermissionDenied)
        if "{" in self.path:
            found.append(NotFound)
        found.append(NotAcceptable)
        if key is not None:
            found += [RequestInProgress, IdempotencyKeyReused]
        if getattr(view, "throttle_classes", None) or getattr(view, "authentication_classes", None):
            found.append(RateLimited)
        found.append(ServiceUnavailable)
        return found

    def _declared_problems(self) -> list[type[DomainError]]:
        declared = self.get_response_serializers()
        if not isinstance(declared, dict):
            return []
        return [
            p
            for value in declared.values()
            if isinstance(value, ProblemResponse)
            for p in value.problems
        ]

    def _problem_response(self, status: int, problems: list[type[DomainError]]) -> dict[str, Any]:
        problem = self.resolve_serializer(ProblemSerializer, "response")
        codes = list(dict.fromkeys(p.code for p in problems))
        schema = {
            "allOf": [
                problem.ref,
                {"type": "object", "properties": {"code": {"type": "string", "enum": codes}}},
            ]
        }
        out: dict[str, Any] = {
            "description": _describe({p.code: p for p in problems}.values()),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}},
        }
        if status in _HEADERS:
            out["headers"] = _HEADERS[status]
        return out

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        by_status: dict[int, list[type[DomainError]]] = {}
        for problem in self._common_problems() + self._declared_problems():
            by_status.setdefault(problem.status, []).append(problem)
        for status, problems in by_status.items():
            responses[str(status)] = self._problem_response(status, problems)
        if self._idempotency_parameter() is not None:
            for status, response in responses.items():
                if status.startswith("2"):
                    response.setdefault("headers", {})[REPLAYED_HEADER] = {
                        "schema": {"type": "string", "enum": ["true"]},
                        "description": "Present on a replay of the first answer.",
                    }
        return dict(sorted(responses.items()))
