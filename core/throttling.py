"""Rate limits, in fixed one-minute windows:

- per API client (`ClientRateThrottle`): its own `rate_per_minute`, else
  LOJAL_DEFAULT_RATE_PER_MINUTE;
- per client IP for calls without a valid key (`unauthenticated_count`,
  `unauthenticated_check`, called by core.auth): no key, a malformed,
  unknown, expired or revoked one. Past LOJAL_UNAUTHENTICATED_RATE_PER_MINUTE
  the IP is answered 429 before its keys are even looked up, so a flood of
  random keys costs neither a query nor the key cache.

With Redis, one round trip per count: INCR and EXPIRE NX pipelined on a
client kept for the process. Without Redis (the embedded default), the
Django cache counts instead. Either way the count is atomic.

A store that does not answer fails open: the call passes, a warning is
logged (at most one per LOG_EVERY_SECONDS per process), and the process
leaves the store alone for PAUSE_SECONDS, so a Redis that hangs rather
than refuses costs one call a timeout, not every call. A limit is a
shield against floods, never a reason to refuse a till's purchase.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

from core.actors import Actor
from core.http import client_ip
from core.metrics import throttled_observe

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
LOG_EVERY_SECONDS = 10.0
PAUSE_SECONDS = 5.0

_redis: tuple[str, Any] | None = None
_logged_at = -LOG_EVERY_SECONDS
_paused_until = 0.0
_log_lock = threading.Lock()


def _redis_client() -> Any:
    """The process's client for REDIS_URL (a new one if the URL changed)."""
    global _redis
    url = settings.REDIS_URL
    if _redis is None or _redis[0] != url:
        _redis = (url, redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1))
    return _redis[1]


def _paused() -> bool:
    return time.monotonic() < _paused_until


def forget_failures() -> None:
    """Ask the store again at once (tests; the pause ends by itself)."""
    global _paused_until, _logged_at
    with _log_lock:
        _paused_until, _logged_at = 0.0, -LOG_EVERY_SECONDS


def _fail_open(exc: Exception) -> None:
    global _logged_at, _paused_until
    with _log_lock:
        now = time.monotonic()
        _paused_until = now + PAUSE_SECONDS
        if now - _logged_at < LOG_EVERY_SECONDS:
            return
        _logged_at = now
    logger.warning(
        "throttle store unavailable, letting calls pass: %s: %s", type(exc).__name__, exc
    )


def _count(key: str) -> int | None:
    """Add one to the window's count and answer it; None if the store does
    not answer (the caller lets the call pass)."""
    if _paused():
        return None
    try:
        if settings.LOJAL_THROTTLE_IN_REDIS:
            pipe = _redis_client().pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 30, nx=True)
            return int(pipe.execute()[0])
        try:
            return cache.incr(key)
        except ValueError:
            # First call of the window; add() is atomic, so at most one wins.
            if cache.add(key, 1, timeout=WINDOW_SECONDS + 30):
                return 1
            return cache.incr(key)
    except (redis.RedisError, OSError) as exc:
        _fail_open(exc)
        return None


def _peek(key: str) -> int | None:
    """The window's count, unchanged; None if the store does not answer."""
    if _paused():
        return None
    try:
        if settings.LOJAL_THROTTLE_IN_REDIS:
            value = _redis_client().get(key)
            return int(value) if value is not None else 0
        return int(cache.get(key, 0))
    except (redis.RedisError, OSError) as exc:
        _fail_open(exc)
        return None


def _window(now: float) -> tuple[int, float]:
    """The window's number and the seconds until it ends."""
    return int(now // WINDOW_SECONDS), WINDOW_SECONDS - (now % WINDOW_SECONDS)


class ClientRateThrottle(BaseThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        client = request.user
        if not isinstance(client, Actor) or client.api_client_id is None:
            return True
        limit = getattr(client, "rate_per_minute", None) or settings.LOJAL_DEFAULT_RATE_PER_MINUTE
        window, self._wait = _window(time.time())
        count = _count(f"lojal:throttle:{client.api_client_id}:{window}")
        if count is not None and count > limit:
            throttled_observe(client=getattr(client, "name", str(client.api_client_id)))
            return False
        return True

    def wait(self) -> float:
        return self._wait


# The metrics' client label of calls throttled per IP (one label, not one per IP).
UNAUTHENTICATED = "(no valid key)"


def _unauthenticated_key(request: Any, window: int) -> str:
    return f"lojal:unauth:{client_ip(request)}:{window}"


def unauthenticated_count(request: Any) -> None:
    """Count a call without a valid key against its client IP; raise
    Throttled (429) once the IP is past its limit."""
    window, wait = _window(time.time())
    count = _count(_unauthenticated_key(request, window))
    if count is not None and count > settings.LOJAL_UNAUTHENTICATED_RATE_PER_MINUTE:
        throttled_observe(client=UNAUTHENTICATED)
        raise Throttled(wait)


def unauthenticated_check(request: Any) -> None:
    """Before a key is looked up: raise Throttled (429) if its client IP is
    already past its limit of calls without a valid key."""
    window, wait = _window(time.time())
    count = _peek(_unauthenticated_key(request, window))
    if count is not None and count >= settings.LOJAL_UNAUTHENTICATED_RATE_PER_MINUTE:
        throttled_observe(client=UNAUTHENTICATED)
        raise Throttled(wait)
