"""The Celery app. The jobs ack late so that a worker that dies mid-run
hands the job to another: they are idempotent.

The jobs' tasks come from their declarations (core.jobs.job); autodiscovery
imports each app's `tasks` module, which imports the modules declaring them.
"""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("lojal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _metrics_serve(**_: object) -> None:
    """METRICS_WORKER_PORT: the worker's main process serves the job metrics
    of all its pool processes there (docs/operations.md, "Metrics")."""
    port = os.environ.get("METRICS_WORKER_PORT")
    if port:
        from core.metrics import worker_metrics_serve

        worker_metrics_serve(int(port))
