"""The admin's imports in the background: thin tasks calling the services.
They ack late (a worker lost mid-import hands it to another): the import
is idempotent and resumable. The webhooks' jobs and sender are declared in
integrations/webhooks.py, imported here for the worker's autodiscovery."""

from __future__ import annotations

from celery import shared_task

from integrations import (
    privacy,  # noqa: F401  (declares the members_retention job)
    webhooks,  # noqa: F401  (its jobs and sender, for the worker)
)
from integrations.services import import_job_dry_run, import_job_run


@shared_task(
    name="integrations.import_dry_run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def import_dry_run_task(job_id: int) -> None:
    import_job_dry_run(job_id=job_id)


@shared_task(
    name="integrations.import_run", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def import_run_task(job_id: int) -> None:
    import_job_run(job_id=job_id)
