"""Production: everything from the environment, secure defaults, no fallbacks."""

from .base import *  # noqa: F403
from .base import BASE_DIR, env

STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = False

SECRET_KEY = env.str("SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Health checks from the orchestrator come over plain HTTP inside the network.
# So do Prometheus's scrapes of /metrics (METRICS_TOKEN, METRICS_ALLOWED_IPS).
SECURE_REDIRECT_EXEMPT = [r"^health/(live|ready)?$", r"^metrics$"]
# One JSON object per line, for the log collector.
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = {
    **LOGGING,  # noqa: F405
    "handlers": {"console": {**LOGGING["handlers"]["console"], "formatter": LOG_FORMAT}},  # noqa: F405
}
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
