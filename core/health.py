"""Health endpoints for the orchestrator and the load balancer, without a key:

- `GET /health/live`: the process answers HTTP. No I/O at all: restart the
  process only when this fails.
- `GET /health/ready`: the database, the broker (Redis, or the local
  broker folder) and a worker heartbeat fresher than
  LOJAL_WORKER_HEARTBEAT_SECONDS (core.tasks.heartbeat, a beat task every
  30 s). 200 when all are fine, else 503: take the instance out of the
  load balancer until it is 200 again.
- `GET /health/`: the same answer as `/health/ready` (its older name).

The readiness answer is computed at most once per READY_CACHE_SECONDS per
process, so a flood of health checks costs one query and one ping a second.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from core.models import WorkerHeartbeat

READY_CACHE_SECONDS = 1.0

_ready: tuple[float, dict[str, Any], int] | None = None
_ready_lock = threading.Lock()


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _broker() -> str:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            client.ping()
        finally:
            client.close()
        return "ok"
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    return "ok" if folder.is_dir() else "missing"


def _workers() -> str:
    seen = WorkerHeartbeat.objects.filter(name="worker").values_list("seen_at", flat=True).first()
    if seen is None:
        return "none yet"
    age = timezone.now() - seen
    return "ok" if age <= timedelta(seconds=settings.LOJAL_WORKER_HEARTBEAT_SECONDS) else "stale"


def readiness() -> tuple[dict[str, Any], int]:
    """The checks, their answer and its status, computed afresh."""
    checks: dict[str, str] = {}
    for name, check in (
        ("database", _database),
        ("redis" if settings.REDIS_URL else "broker", _broker),
        ("workers", _workers),
    ):
        try:
            checks[name] = check()
        except Exception as exc:  # a health check reports, it does not raise
            checks[name] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return {"status": "ok" if healthy else "unhealthy", "checks": checks}, 200 if healthy else 503


def forget_readiness() -> None:
    global _ready
    with _ready_lock:
        _ready = None


def _cached_readiness() -> tuple[dict[str, Any], int]:
    global _ready
    with _ready_lock:  # one request computes it; the others wait and share it
        now = time.monotonic()
        if _ready is None or now - _ready[0] >= READY_CACHE_SECONDS:
            body, status = readiness()
            _ready = (now, body, status)
        return _ready[1], _ready[2]


@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    body, status = _cached_readiness()
    response = JsonResponse(body, status=status)
    if status != 200:
        response["Retry-After"] = "1"
    return response
