"""Settings shared by every environment, read from the environment.

Without DATABASE_URL / REDIS_URL the service runs on its embedded defaults:
SQLite and a Celery broker on the local filesystem (see README, "make run").
Importing settings has no side effect: nothing is written, nothing probed.
`local` (the default of manage.py, Celery and WSGI), `production`, `test`
and `bench` build on this module.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("LOJAL_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env(DEBUG=(bool, False))


SECRET_KEY = env.str("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    "backoffice.admin_config.LojalAdminConfig",  # django.contrib.admin, our site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "pgtrigger",
    "axes",
    # The apps in their layers, lowest first (docs/architecture.md).
    "core",
    "club",
    "members",
    "loyalty",
    "rewards",
    "journeys",
    "insights",
    "campaigns",
    "checkout",
    "integrations",
    "backoffice",
]

MIDDLEWARE = [
    # Outermost: every answer gets its request id, log line and count.
    "core.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.http.BodySizeLimitMiddleware",
    # Django's session, user and messages, for the pages alone: the API's
    # paths go past them (core.http._PagesOnly). CSRF stays whole: the
    # deployment checks look for Django's own, and the API's views are exempt.
    "core.http.PagesSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "core.http.PagesAuthenticationMiddleware",
    "core.http.PagesMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database that does not answer: 503 with Retry-After, for the views
    # outside DRF too (the admin); DRF's views answer it in core.errors.
    "core.http.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it answers a locked-out admin login.
    "axes.middleware.AxesMiddleware",
]

# The admin login is throttled by django-axes: AXES_FAILURE_LIMIT failed
# logins of one username from one client IP lock that pair out for
# AXES_COOLOFF_TIME; a success resets the count. The client IP is the
# API's (core.http.client_ip, behind TRUSTED_PROXY_COUNT proxies).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_LOCKOUT_PARAMETERS = [["ip_address", "username"]]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.http.admin_login_ip"
# The attempts' log rows are kept for failures only: a success is in the
# admin's own log already.
AXES_DISABLE_ACCESS_LOG = True
# Its start-up banner on every manage.py command is noise in the logs.
AXES_VERBOSE = False

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (API, worker, beat) share the file: wait for locks
    # instead of failing, and take the write lock at BEGIN so a transaction
    # never has to upgrade a read lock (which SQLite answers with an error).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # A health check is a round trip before every request; a connection
    # that broke is replaced after the request that found it (CONN_MAX_AGE).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
    # Server-side binding lets psycopg prepare the statements a process runs
    # again and again (prepare_threshold), so Postgres plans them once, not
    # per request. Not for pgbouncer in transaction pooling mode.
    DATABASES["default"]["OPTIONS"] = {
        "server_side_binding": env.bool("DB_SERVER_SIDE_BINDING", default=True),
        "prepare_threshold": env.int("DB_PREPARE_THRESHOLD", default=5),
        # A database that does not answer costs a call at most this long
        # before it answers 503 (psycopg takes 2 s as its floor).
        "connect_timeout": env.int("DB_CONNECT_TIMEOUT", default=2),
        # No JIT: the service's statements run in milliseconds, and a cost
        # guess over a big table (a partial index's rows, a generic plan)
        # sets off a compile of a hundred milliseconds or more per call.
        # The jobs that scan millions of rows were measured without it.
        "options": env.str("DB_OPTIONS", default="-c jit=off"),
    }


DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "lojal",
        }
    }
else:
    # Shared by the API and worker processes, as Redis would be.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# collectstatic fills this in images (production settings); a checkout
# without it serves the apps' static folders directly (WhiteNoise finders).
STATIC_ROOT = BASE_DIR / "staticfiles" if (BASE_DIR / "staticfiles").exists() else None
# Uploads (the imports' files and reports): never served by the web server.
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = STATIC_ROOT is None

# Request bodies above this answer 400 before any view reads them.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["core.auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.ClientRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["core.http.OrjsonRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.http.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.ProblemAutoSchema",
    "EXCEPTION_HANDLER": "core.errors.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Lojal API",
    "DESCRIPTION": "Membership club and loyalty program service: the integration contract v1.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        # The `code` of core.schema.Problem: every code an error answer can carry.
        "ProblemCodeEnum": "core.errors.problem_codes",
        # Choice sets that more than one component shows, named once.
        "MemberStatusEnum": "members.models.Member.Status",
        "MemberChannelEnum": "members.models.Member.Channel",
        "LedgerEntryKindEnum": "loyalty.models.LedgerEntry.Kind",
        "BenefitKindEnum": "rewards.models.Benefit.Kind",
        "VoucherStatusEnum": "rewards.models.Voucher.Status",
        "CampaignRewardKindEnum": "campaigns.models.Campaign.Kind",
        "CampaignChannelEnum": "campaigns.models.Campaign.Channel",
        "CampaignStatusEnum": "campaigns.selectors.CAMPAIGN_STATUSES",
        "ExperimentStatusEnum": "campaigns.selectors.EXPERIMENT_STATUSES",
    },
}

# Celery: Redis when REDIS_URL is set, else a broker on the local filesystem
# that real worker processes share (make run on a bare machine).
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # Retries and ETAs must come back before Redis re-delivers an unacked task.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CELERY_BROKER_URL = "filesystem://"
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
# A broker that does not answer: a publish gives up within a few seconds
# (what it would have started waits in the outbox for the beat's run).
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Structured logs (core/logs.py): JSON lines in production, a readable
# console locally; personal data and secrets are masked in every line.
LOG_FORMAT = env.str("LOG_FORMAT", default="console")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "core.logs.json_formatter"},
        "console": {"()": "core.logs.console_formatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Our request line (core.logs) replaces these: theirs carry raw
        # paths and query strings (?email=, ?phone=, voucher codes).
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
    },
}
# The worker logs through LOGGING above, not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# /metrics (core/metrics.py): open when METRICS_PUBLIC (local, tests); else
# to `Authorization: Bearer <METRICS_TOKEN>` or the addresses (networks) in
# METRICS_ALLOWED_IPS; with neither it answers 404.
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=False)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])

# Per-client default rate (requests per minute); each API client may set its own.
# Counted in Redis when there is one (config/throttling.py), else in the cache.
LOJAL_THROTTLE_IN_REDIS = bool(REDIS_URL)
LOJAL_DEFAULT_RATE_PER_MINUTE = env.int("LOJAL_DEFAULT_RATE_PER_MINUTE", default=6000)
# Calls without a valid key (none, unknown, expired, revoked), counted per
# client IP in a one-minute window: past this many, 429 rate_limited before
# the key is even looked up.
LOJAL_UNAUTHENTICATED_RATE_PER_MINUTE = env.int(
    "LOJAL_UNAUTHENTICATED_RATE_PER_MINUTE", default=120
)
# How many proxies (load balancers) in front of the service append to
# X-Forwarded-For: the client IP is the entry that many from its right end.
# 0: REMOTE_ADDR, X-Forwarded-For ignored (it is the client's to forge).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# Seconds a 503 for an unreachable database tells the client to wait.
LOJAL_UNAVAILABLE_RETRY_AFTER = 5
# How long a worker heartbeat counts as alive for /health/ready.
LOJAL_WORKER_HEARTBEAT_SECONDS = 120
# Points one adjustment of a staff user without `adjust_points_unlimited`
# (the `Club support` group) may book, either way.
SUPPORT_ADJUST_LIMIT = env.int("SUPPORT_ADJUST_LIMIT", default=1000)
# Count purchases and events for the welcome journey's missions (rewards/journey.py).
LOJAL_JOURNEY_ENABLED = env.bool("LOJAL_JOURNEY_ENABLED", default=True)
# The purchase books in one statement on PostgreSQL (loyalty.ledger
# .purchase_earn_book); off, step by step as on SQLite (the same rows:
# tests/checkout/test_purchase_forms.py).
LOJAL_PURCHASE_ONE_STATEMENT = env.bool("LOJAL_PURCHASE_ONE_STATEMENT", default=True)

# Idempotency-Key records older than this are deleted by the idempotency_purge
# job (core/idempotency.py); the contract keeps them at least 24 hours.
IDEMPOTENCY_RETENTION_HOURS = env.int("IDEMPOTENCY_RETENTION_HOURS", default=48)

# Webhooks (integrations/webhooks.py): URLs resolving to loopback, private or
# link-local addresses are refused unless allowed (local and test settings
# allow them); the retry delays in seconds; delivered rows kept this long.
WEBHOOKS_ALLOW_PRIVATE = env.bool("WEBHOOKS_ALLOW_PRIVATE", default=False)
WEBHOOK_RETRY_SCHEDULE = [
    int(s)
    for s in env.list(
        "WEBHOOK_RETRY_SCHEDULE", default=["5", "300", "1800", "7200", "18000", "36000", "36000"]
    )
]
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_RETENTION_DAYS = env.int("WEBHOOK_RETENTION_DAYS", default=7)
# How many deliveries of one webhook a sender takes at a time (its in-flight limit).
WEBHOOK_BATCH = env.int("WEBHOOK_BATCH", default=100)
# A dispatch enqueued after each commit that wrote events (the beat's is the fallback).
WEBHOOK_DISPATCH_ON_COMMIT = env.bool("WEBHOOK_DISPATCH_ON_COMMIT", default=True)
