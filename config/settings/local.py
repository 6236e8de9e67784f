"""The default settings of manage.py, Celery and WSGI: a developer's
machine. `make run` (bin/run) generates a secret key once into
var/secret_key and passes it as SECRET_KEY; without one (a management
command run by hand) the key is drawn for the process: never a fixed one.
Production is chosen by the environment:
DJANGO_SETTINGS_MODULE=config.settings.production."""

import secrets

from .base import *  # noqa: F403
from .base import VAR_DIR, env

_key_file = VAR_DIR / "secret_key"
SECRET_KEY = (
    env.str("SECRET_KEY", default="")
    or (_key_file.read_text().strip() if _key_file.is_file() else "")
    or secrets.token_urlsafe(50)
)

# make run: webhooks to a receiver on this machine are allowed.
WEBHOOKS_ALLOW_PRIVATE = env.bool("WEBHOOKS_ALLOW_PRIVATE", default=True)

# A developer's machine: /metrics is open.
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=True)
