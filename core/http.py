"""HTTP plumbing every app shares: JSON in and out, body limits, pagination,
strict serializers that refuse unknown fields."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlencode

import orjson
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from rest_framework import parsers, renderers, serializers
from rest_framework.exceptions import ParseError, ValidationError

from core.errors import (
    NotFound,
    ServerError,
    ValidationFailed,
    database_unavailable,
    problem_of,
    problem_response,
)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


class OrjsonRenderer(renderers.BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(data, default=_default)


NUL = "\x00"
NUL_MESSAGE = "NUL characters (\\u0000) are not allowed."
# No body of the contract nests deeper than a few levels; orjson reads 1024
# but writes only 255 (the idempotency digest, stored JSON), so a deeper body
# failed with 500 after it was read.
MAX_JSON_DEPTH = 32


def json_depth_exceeds(data: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than `limit` levels."""
    stack: list[tuple[int, Any]] = [(0, data)]
    while stack:
        depth, value = stack.pop()
        if isinstance(value, dict | list):
            if depth >= limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((depth + 1, child) for child in children)
    return False


def nul_paths(data: Any) -> list[str]:
    """Where a parsed JSON document holds a NUL character, in a key or a
    string value at any depth, as `field.sub.0` paths (the NUL shown as
    `\\u0000`). PostgreSQL's text and jsonb cannot store NUL: refused at the
    door, it never reaches a query of any route."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        prefix, value = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                found.append(prefix or "non_field_errors")
        elif isinstance(value, dict):
            for key, sub in value.items():
                shown = key.replace(NUL, "\\u0000")
                path = f"{prefix}.{shown}" if prefix else shown
                if NUL in key:
                    found.append(path)
                stack.append((path, sub))
        elif isinstance(value, list):
            stack.extend(
                (f"{prefix}.{i}" if prefix else str(i), sub) for i, sub in enumerate(value)
            )
    return sorted(set(found))


class StrictJSONParser(parsers.BaseParser):
    """JSON bodies of every route: malformed JSON, nesting deeper than
    MAX_JSON_DEPTH, and NUL characters anywhere in it answer 400
    validation_error before any view sees them."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = orjson.loads(stream.read())
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
        if json_depth_exceeds(data):
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        paths = nul_paths(data)
        if paths:
            raise ValidationError({path: [NUL_MESSAGE] for path in paths})
        return data


class BodySizeLimitMiddleware:
    """Refuse oversized bodies before anything reads them, and NUL characters
    in the URL or a header (PostgreSQL text cannot hold them: a query would
    fail with 500; the body's are refused by StrictJSONParser)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if (length < 0 or length > self.limit) and request.path.startswith("/api/"):
            return problem_response(
                problem_of(
                    ValidationFailed,
                    f"The body may be at most {self.limit} bytes.",
                    title="Request body too large",
                )
            )
        if request.path.startswith("/api/"):
            if NUL in request.path or NUL in unquote(request.META.get("QUERY_STRING", "")):
                return problem_response(
                    problem_of(
                        ValidationFailed, "The URL contains a NUL character.", title="Bad request"
                    )
                )
            headers = sorted(
                name[5:].replace("_", "-").title()
                for name, value in request.META.items()
                if name.startswith("HTTP_") and isinstance(value, str) and NUL in value
            )
            if headers:
                return problem_response(
                    problem_of(
                        ValidationFailed,
                        f"A header contains a NUL character: {', '.join(headers)}.",
                        title="Bad request",
                        errors={name: [NUL_MESSAGE] for name in headers},
                    )
                )
        return self.get_response(request)


def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str:
    """The caller's IP: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT proxies
    that each append to X-Forwarded-For, the entry that many from its right
    end (what is left of it the client may have forged). A header shorter
    than that, or an entry that is not an address, did not come through
    every proxy: REMOTE_ADDR then."""
    remote = request.META.get("REMOTE_ADDR") or "unknown"
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted <= 0:
        return remote
    forwarded = [p for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
    if len(forwarded) < trusted:
        return remote
    return _ip(forwarded[-trusted]) or remote


def admin_login_ip(request: HttpRequest) -> str | None:
    """client_ip for django-axes, which stores it as an address (None when
    there is none, as in the test client's forced logins)."""
    return _ip(client_ip(request))


class DatabaseUnavailableMiddleware:
    """503 problem+json with Retry-After when the database does not answer,
    for the views outside DRF (the API's own answer it in core.errors)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, (OperationalError, InterfaceError)):
            body, headers = database_unavailable(exception)
            return problem_response(body, headers)
        return None


API_PREFIX = "/api/"


class _PagesOnly:
    """A middleware only the server-rendered pages (admin, back office)
    need: the API's paths go straight past it. The API authenticates by
    key, keeps no session and shows no messages, and a till's call should
    not pay for them."""

    get_response: Callable[[HttpRequest], HttpResponse]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        hook = getattr(super(), "process_view", None)
        if hook is None or request.path_info.startswith(API_PREFIX):
            return None
        return hook(request, view, args, kwargs)


class PagesSessionMiddleware(_PagesOnly, SessionMiddleware):
    pass


class PagesAuthenticationMiddleware(_PagesOnly, AuthenticationMiddleware):
    pass


class PagesMessageMiddleware(_PagesOnly, MessageMiddleware):
    pass


class StrictSerializer(serializers.Serializer):
    """Input serializer that answers 400 for fields it does not know.

    A client that sends `balance` or `tier` in a PATCH must learn at once
    that nothing of it was applied.

    `fields_once = True`: `parse` builds its fields once per process (for
    the hot calls; only serializers whose fields are fixed by their class).
    """

    fields_once = False

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        read_only = sorted(k for k in data if k in self.fields and self.fields[k].read_only)
        errors = {k: ["Unknown field."] for k in unknown}
        errors.update({k: ["Read-only field."] for k in read_only})
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


# The bound fields of serializers that declare `fields_once`, built once per
# process (see parse).
_fields_once: dict[type, Any] = {}


def parse(
    serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any
) -> dict[str, Any]:
    serializer = serializer_class(data=data, **kwargs)
    if not kwargs and getattr(serializer_class, "fields_once", False):
        # DRF deep-copies every declared field for each instance, a hot
        # call's largest cost in its validation. Fields keep no state of a
        # validation; without a context or `partial` they are the same for
        # every call, so they are bound once to a template and shared.
        fields = _fields_once.get(serializer_class)
        if fields is None:
            fields = _fields_once.setdefault(serializer_class, serializer_class().fields)
        serializer.__dict__["fields"] = fields  # DRF's cached_property of `fields`
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data  # type: ignore[return-value]


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("Invalid cursor.", errors={"cursor": ["Invalid cursor."]}) from None
    if value < 0:
        raise ValidationFailed("Invalid cursor.", errors={"cursor": ["Invalid cursor."]})
    return value


def page_size(raw: str | None, *, default: int = 50, maximum: int = 200) -> int:
    if raw is None:
        return default
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= maximum:
        raise ValidationFailed(
            f"page_size must be 1 to {maximum}.",
            errors={"page_size": [f"Must be an integer from 1 to {maximum}."]},
        )
    return size


def next_link(request: Any, cursor: str) -> str:
    params = {k: v for k, v in request.query_params.items() if k != "cursor"}
    params["cursor"] = cursor
    return request.build_absolute_uri(request.path) + "?" + urlencode(params)


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(problem_of(NotFound, "No such resource."))


def server_error_view(request: HttpRequest) -> HttpResponse:
    return problem_response(problem_of(ServerError, "The service failed; it has been logged."))


def bad_request_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(problem_of(ValidationFailed, "Bad request.", title="Bad request"))
