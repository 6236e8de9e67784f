"""Tests: the base settings with an in-process cache and fast hashing.

`make test` (bin/test) chooses the database: DATABASE_URL when set, else
Postgres on 127.0.0.1:5432 if it answers, else SQLite (the Postgres-only
tests are then skipped, loudly)."""

import os

from .base import *  # noqa: F403

SECRET_KEY = "tests-only-not-a-secret"

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOJAL_DEFAULT_RATE_PER_MINUTE = 100_000
# Counted in the per-test cache, so that runs never share a window's count.
LOJAL_THROTTLE_IN_REDIS = False
# The demo club's welcome journey would pay a fresh member's first purchase
# a mission's points, and the other suites count points exactly; the
# journey's own tests (tests/journeys/, the `journey_on` fixture) switch it on.
LOJAL_JOURNEY_ENABLED = False

# The concurrency tests open fifty connections at once on a shared machine:
# a connect slower than production's 2 s there is load, not an outage (the
# outage tests use a refusing port, answered at once).
if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"]["OPTIONS"]["connect_timeout"] = 15  # noqa: F405

# One test database per run, so that runs side by side (a developer's and
# an editor's, say) never drop each other's.
_database = DATABASES["default"]  # noqa: F405
_database.setdefault("TEST", {})["NAME"] = (
    f"test_{_database['NAME'] or 'lojal'}_{os.getpid()}"
    if _database["ENGINE"].endswith("postgresql")
    else None
)

# The tests' webhook receivers listen on 127.0.0.1.
WEBHOOKS_ALLOW_PRIVATE = True
# No broker in the tests: they run the dispatch and the senders themselves.
WEBHOOK_DISPATCH_ON_COMMIT = False

# /metrics open, as on a developer's machine (tests/core/test_metrics.py
# proves the production rule with the settings it sets).
METRICS_PUBLIC = True
