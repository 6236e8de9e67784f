"""The periodic tasks, installed in django-celery-beat's tables so that staff
see, change and pause them in the admin. Apps add theirs to SCHEDULES."""

from __future__ import annotations

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

# name: (task, every N seconds | crontab dict)
SCHEDULES: dict[str, tuple[str, int | dict[str, str]]] = {
    "worker heartbeat": ("config.heartbeat", 30),
    # Hourly, so that every market's local midnight is met within the hour.
    "points: mature pending": ("loyalty.points_mature", {"minute": "5"}),
    "points: expire": ("loyalty.points_expire", {"minute": "10"}),
    "points: expiry notices": ("loyalty.points_expiry_notices", {"minute": "20", "hour": "6"}),
    "holds: release expired": ("loyalty.holds_release", 60),
    "tiers: evaluate expired validity": ("loyalty.tiers_evaluate", {"minute": "30"}),
    # Hourly, like the points jobs: every market's local midnight within the hour.
    "missions: close missed": ("rewards.missions_close", {"minute": "40"}),
    "gifts: tier upgrade": ("rewards.tier_upgrade_gifts", {"minute": "45"}),
    "gifts: welcome": ("rewards.welcome_gifts", {"minute": "50"}),
    # Daily: a birthday month is long, and the job is idempotent per year.
    "gifts: birthday": ("rewards.birthday_gifts", {"minute": "35", "hour": "5"}),
    "vouchers: expire": ("rewards.vouchers_expire", {"minute": "15"}),
}


def schedules_install() -> int:
    created = 0
    with transaction.atomic():
        for name, (task, when) in SCHEDULES.items():
            if PeriodicTask.objects.filter(name=name).exists():
                continue  # staff may have changed it: leave it
            if isinstance(when, int):
                interval, _ = IntervalSchedule.objects.get_or_create(
                    every=when, period=IntervalSchedule.SECONDS
                )
                PeriodicTask.objects.create(name=name, task=task, interval=interval)
            else:
                crontab, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **when)
                PeriodicTask.objects.create(name=name, task=task, crontab=crontab)
            created += 1
    return created
