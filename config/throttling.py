"""Per-client rate limit: a fixed one-minute window counted in the cache.

One atomic increment per request (Redis INCR in production) rather than
DRF's default history list, which reads and rewrites a list every call.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from config.auth import Client


class ClientRateThrottle(BaseThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        client = request.user
        if not isinstance(client, Client):
            return True
        limit = client.rate_per_minute or settings.LOJAL_DEFAULT_RATE_PER_MINUTE
        now = time.time()
        window = int(now // 60)
        key = f"throttle:{client.id}:{window}"
        try:
            count = cache.incr(key)
        except ValueError:
            # First call of the window; add() is atomic, so at most one wins.
            if cache.add(key, 1, timeout=90):
                count = 1
            else:
                count = cache.incr(key)
        self._wait = 60 - (now % 60)
        return count <= limit

    def wait(self) -> float:
        return self._wait
