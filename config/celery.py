"""The Celery app. Tasks are enqueued only after their transaction commits
(see `enqueue_on_commit`), and the points jobs ack late so that a worker
that dies mid-run hands the job to another: they are idempotent."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("lojal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
