"""Thin Celery tasks over the points jobs.

They are idempotent, so they ack late and are re-queued when a worker dies
mid-run (task_reject_on_worker_lost); a retry comes back well inside the
Redis visibility timeout (an hour), and a time limit ends a stuck run.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils.dateparse import parse_datetime

from loyalty import lifecycle, tiers

JOB_OPTIONS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "time_limit": 50 * 60,
    "soft_time_limit": 45 * 60,
    "autoretry_for": (Exception,),
    "retry_backoff": 30,
    "retry_backoff_max": 300,
    "max_retries": 5,
}


def _as_of(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


@shared_task(name="loyalty.points_mature", **JOB_OPTIONS)
def points_mature_task(as_of: str | None = None) -> str:
    return str(lifecycle.points_mature(as_of=_as_of(as_of)))


@shared_task(name="loyalty.points_expire", **JOB_OPTIONS)
def points_expire_task(as_of: str | None = None, batch_size: int = lifecycle.BATCH) -> str:
    return str(lifecycle.points_expire(as_of=_as_of(as_of), batch_size=batch_size))


@shared_task(name="loyalty.holds_release", **JOB_OPTIONS)
def holds_release_task(as_of: str | None = None) -> str:
    return str(lifecycle.holds_release(as_of=_as_of(as_of)))


@shared_task(name="loyalty.points_expiry_notices", **JOB_OPTIONS)
def points_expiry_notices_task(as_of: str | None = None) -> str:
    return str(lifecycle.points_expiry_notices(as_of=_as_of(as_of)))


@shared_task(name="loyalty.tiers_evaluate", **JOB_OPTIONS)
def tiers_evaluate_task(as_of: str | None = None) -> str:
    return str(tiers.tiers_evaluate(as_of=_as_of(as_of)))
