"""`make bench`: the production settings, served over plain HTTP on loopback
(the bare app it is measured against is bench/bare.py, outside the project).

bin/bench sets DATABASE_URL (its own database), REDIS_URL (the throttle
counts in Redis, as in production), SECRET_KEY and ALLOWED_HOSTS.
"""

import os

os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")

from .base import VAR_DIR
from .production import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]

# wrk speaks plain HTTP to 127.0.0.1: no redirect to https, no HSTS.
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0

# A checkout has no collected static files; the bench serves none.
STATIC_ROOT = VAR_DIR / "bench-static"  # bin/bench makes it

# The bench client gets its own high rate (see bench/seed.py); this is the
# fallback for any other key, high enough not to be what is measured.
LOJAL_DEFAULT_RATE_PER_MINUTE = 100_000_000

# Only errors: a log line per request would be part of the measurement.
LOGGING = {**LOGGING, "root": {**LOGGING["root"], "level": "WARNING"}}  # noqa: F405
