"""Thin Celery tasks over the voucher jobs, with the options of the points
jobs (loyalty.tasks.JOB_OPTIONS): idempotent, so they ack late and retry."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils.dateparse import parse_datetime

from loyalty.tasks import JOB_OPTIONS
from rewards import gifts, services


@shared_task(name="rewards.vouchers_expire", **JOB_OPTIONS)
def vouchers_expire_task(as_of: str | None = None, batch_size: int = 5000) -> str:
    return str(services.vouchers_expire(as_of=parse_datetime(as_of) if as_of else None,
                                        batch_size=batch_size))


def _as_of(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


@shared_task(name="rewards.birthday_gifts", **JOB_OPTIONS)
def birthday_gifts_task(as_of: str | None = None) -> str:
    return str(gifts.birthday_gifts(as_of=_as_of(as_of)))


@shared_task(name="rewards.tier_upgrade_gifts", **JOB_OPTIONS)
def tier_upgrade_gifts_task(as_of: str | None = None) -> str:
    return str(gifts.tier_upgrade_gifts(as_of=_as_of(as_of)))


@shared_task(name="rewards.welcome_gifts", **JOB_OPTIONS)
def welcome_gifts_task(as_of: str | None = None) -> str:
    return str(gifts.welcome_gifts(as_of=_as_of(as_of)))
