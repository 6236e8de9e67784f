"""Per-client rate limit: a fixed one-minute window.

With Redis, one round trip per request: INCR and EXPIRE NX pipelined on a
client kept for the process. Without Redis (the embedded default), the
Django cache counts instead. Either way the count is atomic.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from core.auth import Client
from core.metrics import throttled_observe

WINDOW_SECONDS = 60
_redis: Any = None


def _redis_client() -> Any:
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
        )
    return _redis


def _count(key: str) -> int:
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


class ClientRateThrottle(BaseThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        client = request.user
        if not isinstance(client, Client):
            return True
        limit = client.rate_per_minute or settings.LOJAL_DEFAULT_RATE_PER_MINUTE
        now = time.time()
        count = _count(f"lojal:throttle:{client.id}:{int(now // WINDOW_SECONDS)}")
        self._wait = WINDOW_SECONDS - (now % WINDOW_SECONDS)
        if count > limit:
            throttled_observe(client=client.name)
            return False
        return True

    def wait(self) -> float:
        return self._wait
