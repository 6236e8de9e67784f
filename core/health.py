"""GET /health/: the database, Redis (or the local broker) and the workers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from core.models import WorkerHeartbeat


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _broker() -> str:
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
        return "ok"
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    return "ok" if folder.is_dir() else "missing"


def _workers() -> str:
    seen = WorkerHeartbeat.objects.filter(name="worker").values_list("seen_at", flat=True).first()
    if seen is None:
        return "none yet"
    age = timezone.now() - seen
    return "ok" if age <= timedelta(seconds=settings.LOJAL_WORKER_HEARTBEAT_SECONDS) else "stale"


@require_GET
def health(request: HttpRequest) -> JsonResponse:
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
    return JsonResponse(
        {"status": "ok" if healthy else "unhealthy", "checks": checks},
        status=200 if healthy else 503,
    )
