"""Tests: the base settings with an in-process cache and fast hashing."""

from .base import *  # noqa: F401,F403

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOJAL_DEFAULT_RATE_PER_MINUTE = 100_000
# Counted in the per-test cache, so that runs never share a window's count.
LOJAL_THROTTLE_IN_REDIS = False
# The demo club's welcome journey would pay a fresh member's first purchase
# a mission's points, and the other suites count points exactly; the
# journey's own tests (tests/rewards/test_journey_*) switch it on.
LOJAL_JOURNEY_ENABLED = False

# `make test` on a machine without DATABASE_URL: Postgres on localhost if it
# answers, else SQLite, with the Postgres-only tests skipped (tests/conftest.py
# says so loudly; CI forbids any skip).
import os
import socket

if not os.environ.get("DATABASE_URL"):
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
        DATABASES = {"default": env.db_url_config(  # noqa: F405
            f"postgres://{os.environ.get('PGUSER', 'postgres')}@127.0.0.1:5432/lojal")}
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"]["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}
    except OSError:
        pass

# One test database per run, so that runs side by side (a developer's and
# an editor's, say) never drop each other's.
DATABASES["default"].setdefault("TEST", {})["NAME"] = (  # noqa: F405
    f"test_{DATABASES['default']['NAME'] or 'lojal'}_{os.getpid()}"  # noqa: F405
    if DATABASES["default"]["ENGINE"].endswith("postgresql") else None  # noqa: F405
)
