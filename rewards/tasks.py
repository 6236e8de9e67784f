"""Thin Celery tasks over the voucher jobs, with the options of the points
jobs (loyalty.tasks.JOB_OPTIONS): idempotent, so they ack late and retry."""

from __future__ import annotations

from celery import shared_task
from django.utils.dateparse import parse_datetime

from loyalty.tasks import JOB_OPTIONS
from rewards import services


@shared_task(name="rewards.vouchers_expire", **JOB_OPTIONS)
def vouchers_expire_task(as_of: str | None = None, batch_size: int = 5000) -> str:
    return str(services.vouchers_expire(as_of=parse_datetime(as_of) if as_of else None,
                                        batch_size=batch_size))


# The welcome-journey and gift jobs' tasks live beside their jobs; importing
# them here registers them with the worker (autodiscovery reads tasks.py).
from rewards import journey_tasks  # noqa: E402,F401
