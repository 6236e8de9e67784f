"""Thin Celery task over the journey's job, with the options of the points
jobs (loyalty.tasks.JOB_OPTIONS): idempotent, so it acks late and retries."""

from __future__ import annotations

from celery import shared_task
from django.utils.dateparse import parse_datetime

from journeys import services
from loyalty.tasks import JOB_OPTIONS


@shared_task(name="rewards.missions_close", **JOB_OPTIONS)
def missions_close_task(as_of: str | None = None) -> str:
    return str(services.missions_close(as_of=parse_datetime(as_of) if as_of else None))
