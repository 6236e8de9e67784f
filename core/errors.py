"""Typed errors that carry their API code, and the problem+json renderer.

Services raise `DomainError` subclasses; the DRF exception handler turns
them, and DRF's own exceptions, into RFC 9457 problem documents with the
stable `code` of API.md.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse
from rest_framework import exceptions as drf

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


class DomainError(Exception):
    status: int = 400
    code: str = "error"
    title: str = "Error"

    def __init__(self, detail: str = "", *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors


class ValidationFailed(DomainError):
    status, code, title = 400, "validation_error", "Invalid request"


class IdempotencyKeyRequired(DomainError):
    status, code, title = 400, "idempotency_key_required", "Idempotency-Key header required"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class MemberExists(DomainError):
    status, code, title = 409, "member_exists", "Member already exists"


class AlreadyExists(DomainError):
    status, code, title = 409, "already_exists", "Already exists"


class MultipleMatches(DomainError):
    status, code, title = 409, "multiple_matches", "Identifier matches more than one member"


class ReceiptConflict(DomainError):
    status, code, title = 409, "receipt_conflict", "Receipt already recorded with another body"


class RequestInProgress(DomainError):
    status, code, title = 409, "request_in_progress", "Request with this key is in progress"


class HoldExpired(DomainError):
    status, code, title = 409, "hold_expired", "Hold expired or cancelled"


class VoucherUsed(DomainError):
    status, code, title = 409, "voucher_used", "Voucher already redeemed"


class IdempotencyKeyReused(DomainError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency-Key reused with another body"


class InsufficientPoints(DomainError):
    status, code, title = 422, "insufficient_points", "Insufficient points"


class ReturnExceedsPurchase(DomainError):
    status, code, title = 422, "return_exceeds_purchase", "Return exceeds purchase"


class CurrencyMismatch(DomainError):
    status, code, title = 422, "currency_mismatch", "Currency mismatch"


class UnknownStore(DomainError):
    status, code, title = 422, "unknown_store", "Unknown store"


class MemberInactive(DomainError):
    status, code, title = 422, "member_inactive", "Member is not active"


class BenefitNotAvailable(DomainError):
    status, code, title = 422, "benefit_not_available", "Benefit not available"


class RewardNotAvailable(DomainError):
    """Not eligible (tier, market, dates, inactive) or out of stock."""

    status, code, title = 422, "reward_not_available", "Reward not available"


class VoucherNotValid(DomainError):
    """A voucher that expired or was cancelled (a redeemed one is VoucherUsed)."""

    status, code, title = 422, "voucher_not_valid", "Voucher not valid"


class ExperimentLocked(DomainError):
    """A change of an experiment's metric, variants or weights after its
    first assignment."""

    status, code, title = 409, "experiment_locked", "Experiment locked"


class InvalidState(DomainError):
    """The object is in a state the operation does not apply to."""

    status, code, title = 409, "invalid_state", "Invalid state"


# The answers the HTTP layer gives by itself (DRF's exceptions, Django's
# handlers). Services do not raise them; they name the status, code and
# title of those answers in one place, for the renderer below and for the
# OpenAPI document (core/schema.py).


class NotAuthenticated(DomainError):
    status, code, title = 401, "not_authenticated", "Not authenticated"


class PermissionDenied(DomainError):
    status, code, title = 403, "permission_denied", "Permission denied"


class MethodNotAllowed(DomainError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class NotAcceptable(DomainError):
    status, code, title = 406, "not_acceptable", "Not acceptable"


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"


class ServiceUnavailable(DomainError):
    """The database does not answer: nothing was done, the call may be retried."""

    status, code, title = 503, "service_unavailable", "Service unavailable"


class ServerError(DomainError):
    status, code, title = 500, "server_error", "Internal error"


def problem_classes() -> list[type[DomainError]]:
    """Every DomainError subclass, in the order they were defined."""
    found: list[type[DomainError]] = []
    pending = list(DomainError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        if cls not in found:
            found.append(cls)
            pending[:0] = cls.__subclasses__()
    return found


def problem_codes() -> list[tuple[str, str]]:
    """(code, title) of every problem the API answers, each code once."""
    seen: dict[str, str] = {}
    for cls in problem_classes():
        seen.setdefault(cls.code, cls.title)
    return list(seen.items())


def problem(status: int, code: str, title: str, detail: str, errors: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return body


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(
        orjson.dumps(body), status=body["status"], content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten(detail: Any) -> dict[str, list[str]]:
    """DRF's nested error details as {"field.sub": ["message"]}."""
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            for index, sub in enumerate(value):
                if sub:
                    walk(f"{prefix}.{index}" if prefix else str(index), sub)
        else:
            messages = value if isinstance(value, list) else [value]
            out.setdefault(prefix or "non_field_errors", []).extend(str(m) for m in messages)

    walk("", detail)
    return out


def problem_of(
    cls: type[DomainError], detail: str, *, title: str | None = None, errors: Any = None
) -> dict[str, Any]:
    """The problem document of one of the classes above."""
    return problem(cls.status, cls.code, title or cls.title, detail, errors)


def problem_for_exception(exc: Exception) -> tuple[dict[str, Any], dict[str, str]] | None:
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        return problem(exc.status, exc.code, exc.title, exc.detail, exc.errors), headers
    if isinstance(exc, drf.ValidationError):
        errors = _flatten(exc.detail)
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
        return problem_of(ValidationFailed, detail, errors=errors), headers
    if isinstance(exc, drf.ParseError):
        return problem_of(
            ValidationFailed, str(exc.detail), title="Malformed request body"
        ), headers
    if isinstance(exc, drf.UnsupportedMediaType):
        return problem_of(
            ValidationFailed, str(exc.detail), title="Unsupported media type"
        ), headers
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        headers["WWW-Authenticate"] = "Api-Key"
        return problem_of(NotAuthenticated, str(exc.detail)), headers
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        detail = str(getattr(exc, "detail", "")) or "Permission denied."
        return problem_of(PermissionDenied, detail), headers
    if isinstance(exc, (drf.NotFound, Http404)):
        return problem_of(NotFound, "No such resource."), headers
    if isinstance(exc, drf.MethodNotAllowed):
        return problem_of(MethodNotAllowed, str(exc.detail)), headers
    if isinstance(exc, drf.NotAcceptable):
        return problem_of(NotAcceptable, str(exc.detail)), headers
    if isinstance(exc, drf.Throttled):
        wait = max(int(exc.wait or 1), 1)
        headers["Retry-After"] = str(wait)
        return problem_of(RateLimited, f"Retry in {wait} s."), headers
    if isinstance(exc, (OperationalError, InterfaceError)):
        return database_unavailable(exc)
    return None


def database_unavailable(exc: Exception) -> tuple[dict[str, Any], dict[str, str]]:
    """The answer to a database that does not answer (refused, timed out,
    a connection that broke; also a deadlock or a serialization failure,
    which Postgres undid): 503 with Retry-After. The transaction was rolled
    back, so a retry is safe, and Django replaces the broken connection
    after this request (CONN_MAX_AGE), so the service recovers by itself."""
    logger.warning("database unavailable: %s: %s", type(exc).__name__, str(exc)[:200])
    wait = settings.LOJAL_UNAVAILABLE_RETRY_AFTER
    return problem_of(ServiceUnavailable, f"The database does not answer; retry in {wait} s."), {
        "Retry-After": str(wait)
    }


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    found = problem_for_exception(exc)
    if found is None:
        return None  # a bug: Django answers 500 (handler500 renders problem+json)
    from rest_framework.views import set_rollback  # here: DRF's views import our renderer

    body, headers = found
    set_rollback()
    return problem_response(body, headers)
