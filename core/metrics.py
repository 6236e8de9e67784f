"""Prometheus metrics, served at /metrics (docs/operations.md, "Metrics").

Counted where things happen, once each: requests by the request middleware
(core.logs), job runs by the job runner (core.jobs.Job), throttled calls by
the throttle (core.throttling). The outbox backlog is read on scrape, with
one query bounded by the outbox's partial index.

Under gunicorn each worker process counts its own; with
PROMETHEUS_MULTIPROC_DIR set (the image sets it), prometheus_client keeps
the counts in files there and a scrape of any worker sums every process's.
Without it (a single process: tests, runserver) the process's own registry
is served.

Who may read /metrics: everyone when METRICS_PUBLIC (local and test
settings); else a caller presenting `Authorization: Bearer <METRICS_TOKEN>`
or connecting from an address in METRICS_ALLOWED_IPS (networks allowed);
anyone else gets 403. With neither set (production's default) /metrics
answers 404: it is off.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.errors import NotFound, PermissionDenied, problem_of, problem_response

log = structlog.get_logger("lojal.metrics")

# No `*_created` series beside every counter: nothing here reads them.
disable_created_metrics()

HTTP_REQUESTS = Counter(
    "lojal_http_requests_total",
    "HTTP requests answered, by method, URL pattern and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "lojal_http_request_duration_seconds",
    "Time from the request entering Django to its answer, by method, URL pattern and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
JOB_RUNS = Counter(
    "lojal_job_runs_total",
    "Job runs finished, by job and outcome (ok or error).",
    ["job", "outcome"],
)
JOB_ROWS = Counter("lojal_job_rows_total", "Rows the job runs did, by job.", ["job"])
JOB_DURATION = Histogram(
    "lojal_job_duration_seconds",
    "Duration of job runs, by job.",
    ["job"],
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0),
)
THROTTLED = Counter(
    "lojal_throttled_total",
    "Calls answered 429 rate_limited, by API client name.",
    ["client"],
)

# The methods a route can answer; anything else is counted as "other" so
# that a client cannot grow the label set.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# The backlog count stops here: the scrape stays cheap whatever the backlog
# (an alert fires long before).
OUTBOX_COUNT_CAP = 100_000


def request_observe(*, method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "other"
    status_label = str(status)
    HTTP_REQUESTS.labels(method, route, status_label).inc()
    HTTP_DURATION.labels(method, route, status_label).observe(seconds)


def job_observe(*, job: str, outcome: str, seconds: float, rows: int) -> None:
    JOB_RUNS.labels(job, outcome).inc()
    JOB_DURATION.labels(job).observe(seconds)
    if rows:
        JOB_ROWS.labels(job).inc(rows)


def throttled_observe(*, client: str) -> None:
    THROTTLED.labels(client).inc()


class OutboxBacklog(Collector):
    """Events not yet handed on (webhooks' dispatch), and the age of the
    oldest: both from the partial index on undelivered events."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        # Here, not at the top: LOGGING imports this module (through
        # core.logs) before the apps, and so the models, are loaded.
        from core.models import OutboxEvent

        pending = OutboxEvent.objects.filter(delivered_at__isnull=True)
        try:
            count = pending.order_by()[:OUTBOX_COUNT_CAP].count()
            oldest = pending.order_by("created_at").values_list("created_at", flat=True).first()
        except DatabaseError:
            # The rest of the scrape still answers; the gauges go absent
            # (alert on absent() too) and the line says why.
            log.warning("metrics: outbox backlog unreadable", exc_info=True)
            return
        age = (timezone.now() - oldest) if oldest is not None else timedelta(0)
        yield GaugeMetricFamily(
            "lojal_outbox_backlog_events",
            f"Outbox events not yet handed on (counted up to {OUTBOX_COUNT_CAP}).",
            value=count,
        )
        yield GaugeMetricFamily(
            "lojal_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox event not yet handed on; 0 when none waits.",
            value=max(age.total_seconds(), 0.0),
        )


class _Registry(Collector):
    """The counts of this process, or of every process sharing the
    multiprocess directory."""

    def collect(self) -> Iterator[Any]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()


def scrape(*, outbox: bool = True) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Registry())
    if outbox:
        registry.register(OutboxBacklog())
    return generate_latest(registry)


def worker_metrics_serve(port: int) -> None:
    """The Celery worker's own /metrics (its job runs), on a port of the
    internal network: no outbox gauges (the API serves those), no auth."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Registry())
    start_http_server(port, registry=registry)


def _from_allowed_address(request: HttpRequest) -> bool:
    # The direct peer: scrapers reach the service inside the network, not
    # through the proxy (whose X-Forwarded-For a caller could write).
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    for allowed in settings.METRICS_ALLOWED_IPS:
        if address in ipaddress.ip_network(allowed, strict=False):
            return True
    return False


def _with_token(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), token.encode())
    )


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_PUBLIC:
        if not settings.METRICS_TOKEN and not settings.METRICS_ALLOWED_IPS:
            return problem_response(problem_of(NotFound, "No such resource."))
        if not (_with_token(request) or _from_allowed_address(request)):
            return problem_response(
                problem_of(PermissionDenied, "Metrics are for the monitoring system only.")
            )
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)
