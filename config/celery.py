"""The Celery app. The jobs ack late so that a worker that dies mid-run
hands the job to another: they are idempotent.

The jobs' tasks come from their declarations (core.jobs.job); autodiscovery
imports each app's `tasks` module, which imports the modules declaring them.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("lojal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
