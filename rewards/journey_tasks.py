"""Thin Celery tasks over the welcome-journey and gift jobs, with the
options of the points jobs (loyalty.tasks.JOB_OPTIONS): idempotent, so they
ack late and retry. Registered through rewards/tasks.py."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils.dateparse import parse_datetime

from loyalty.tasks import JOB_OPTIONS
from rewards import gifts, journey


def _as_of(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


@shared_task(name="rewards.missions_close", **JOB_OPTIONS)
def missions_close_task(as_of: str | None = None) -> str:
    return str(journey.missions_close(as_of=_as_of(as_of)))


@shared_task(name="rewards.birthday_gifts", **JOB_OPTIONS)
def birthday_gifts_task(as_of: str | None = None) -> str:
    return str(gifts.birthday_gifts(as_of=_as_of(as_of)))


@shared_task(name="rewards.tier_upgrade_gifts", **JOB_OPTIONS)
def tier_upgrade_gifts_task(as_of: str | None = None) -> str:
    return str(gifts.tier_upgrade_gifts(as_of=_as_of(as_of)))


@shared_task(name="rewards.welcome_gifts", **JOB_OPTIONS)
def welcome_gifts_task(as_of: str | None = None) -> str:
    return str(gifts.welcome_gifts(as_of=_as_of(as_of)))
