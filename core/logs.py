"""Structured logs: one line per request, a request id that follows the
request into the Celery tasks it enqueues, nothing personal or secret.

- `configure()` (CoreConfig.ready) sets structlog up over the standard
  library's logging, so Django's, Celery's and gunicorn's lines and ours go
  through the same formatter: JSON (`json_formatter`, LOG_FORMAT=json, the
  production default) or a readable console (`console_formatter`, local).
  Both end with `core.redaction.redact`.
- `RequestLogMiddleware` (outermost) takes the request id from a valid
  `X-Request-ID` or draws one, binds it for every line of the request,
  answers it in `X-Request-ID`, and logs `request` with method, route (the
  URL pattern), the path with its secret segments masked, status,
  duration and the API client's name; it counts the request for /metrics.
- Celery: `before_task_publish` writes the bound request id (and client)
  into the task's headers; `task_prerun` binds them in the worker, so the
  worker's lines for that task carry them; `task_postrun` unbinds.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.functional import SimpleLazyObject, empty

from core import metrics
from core.redaction import path_mask, redact

REQUEST_ID_HEADER = "X-Request-ID"
# What a request id from outside may be: a UUID, a trace id, a proxy's own;
# anything else (too long, odd characters) is replaced by a fresh one.
_REQUEST_ID_VALID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")
# The task headers that carry the request's context into the worker.
TASK_HEADER_REQUEST_ID = "lojal_request_id"
TASK_HEADER_CLIENT = "lojal_client"

_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]

request_log = structlog.get_logger("lojal.request")


def configure() -> None:
    structlog.configure(
        processors=[
            # First: a line below the level costs nothing more.
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _formatter(renderer: Any, *, exceptions: list[Any]) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exceptions,
            # Last before rendering: the traceback text is scrubbed too.
            redact,
            renderer,
        ],
    )


def _json_dumps(event: dict[str, Any], **_: Any) -> str:
    # orjson: a few microseconds a line; anything it cannot encode as its str.
    return orjson.dumps(event, default=str).decode()


def json_formatter() -> logging.Formatter:
    """One JSON object per line (LOGGING's formatter under LOG_FORMAT=json)."""
    return _formatter(
        structlog.processors.JSONRenderer(serializer=_json_dumps),
        exceptions=[structlog.processors.format_exc_info],
    )


def console_formatter() -> logging.Formatter:
    """Readable lines for a developer's terminal (LOG_FORMAT=console)."""
    return _formatter(
        structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        ),
        exceptions=[],
    )


def request_id_of(value: str | None) -> str:
    """The incoming id when it is a sane one, else a fresh one."""
    if value and _REQUEST_ID_VALID.match(value):
        return value
    return uuid.uuid4().hex


def _route(request: HttpRequest) -> str:
    """The URL pattern; for an answer given before URL resolution (a
    middleware's refusal) it is resolved here. `unmatched` when none is."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return "unmatched"
    return "/" + match.route if match.route else "unmatched"


def _actor(request: HttpRequest) -> dict[str, Any]:
    """Who called, without loading anyone: an API client by its name (never
    its key), a staff user by id. A session user not yet loaded is left."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        if user._wrapped is empty:
            return {}
        user = user._wrapped
    if user is None:
        return {}
    if getattr(user, "api_client_id", None) is not None:  # core.auth.Client
        return {"client": user.name}
    if getattr(user, "is_authenticated", False):
        return {"staff_user_id": user.pk}
    return {}


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_of(request.META.get("HTTP_X_REQUEST_ID"))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            seconds = time.perf_counter() - started
            response[REQUEST_ID_HEADER] = request_id
            route = _route(request)
            metrics.request_observe(
                method=request.method or "",
                route=route,
                status=response.status_code,
                seconds=seconds,
            )
            request_log.info(
                "request",
                method=request.method,
                route=route,
                path=path_mask(request.path),
                status=response.status_code,
                duration_ms=round(seconds * 1000, 2),
                **_actor(request),
            )
            return response
        finally:
            structlog.contextvars.clear_contextvars()


def bind_client(name: str) -> None:
    """The API client of the request, for every line after authentication."""
    structlog.contextvars.bind_contextvars(client=name)


# --- Celery -----------------------------------------------------------------------


def task_headers_add(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """before_task_publish: the publishing request's id into the message."""
    if headers is None:
        return
    context = structlog.contextvars.get_contextvars()
    if "request_id" in context:
        headers.setdefault(TASK_HEADER_REQUEST_ID, context["request_id"])
    if "client" in context:
        headers.setdefault(TASK_HEADER_CLIENT, context["client"])


def _task_header(task: Any, name: str) -> Any:
    # A worker merges the message's headers into task.request; an eager
    # apply(headers=...) keeps them under request.headers.
    request = task.request
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def task_context_bind(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """task_prerun: the task's lines carry its name, id and the request id
    it came from."""
    structlog.contextvars.clear_contextvars()
    if task is None:
        return
    context: dict[str, Any] = {"task": task.name, "task_id": task_id}
    request_id = _task_header(task, TASK_HEADER_REQUEST_ID)
    if isinstance(request_id, str):
        context["request_id"] = request_id
    client = _task_header(task, TASK_HEADER_CLIENT)
    if isinstance(client, str):
        context["client"] = client
    structlog.contextvars.bind_contextvars(**context)


def task_context_clear(**_: Any) -> None:
    """task_postrun."""
    structlog.contextvars.clear_contextvars()


def celery_connect() -> None:
    from celery import signals

    signals.before_task_publish.connect(task_headers_add, weak=False, dispatch_uid="lojal-rid")
    signals.task_prerun.connect(task_context_bind, weak=False, dispatch_uid="lojal-rid")
    signals.task_postrun.connect(task_context_clear, weak=False, dispatch_uid="lojal-rid")
