"""The batch-job machinery every domain's jobs share: results, progress,
keyset batches per market."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import connection, transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from django.db.models import Q

Progress = Callable[[int], None]


@dataclass
class JobResult:
    job: str
    rows: int = 0
    batches: int = 0

    def __str__(self) -> str:
        return f"{self.job}: {self.rows} rows in {self.batches} batches"


def set_based() -> bool:
    return connection.vendor == "postgresql"


class Keyset:
    """Walks a partial index on (date, id) in order, batch after batch, so
    that each batch starts where the last ended rather than rescanning the
    rows already done (which a million-row run would pay for quadratically)."""

    def __init__(self) -> None:
        self.last: tuple[date, int] | None = None

    def page(self, qs: Any, date_field: str, size: int) -> list[tuple[int, int]]:
        if self.last is not None:
            last_date, last_id = self.last
            qs = qs.filter(Q(**{f"{date_field}__gt": last_date})
                           | Q(**{date_field: last_date, "id__gt": last_id}))
        rows = list(qs.order_by(date_field, "id").values_list(date_field, "id", "member_id")[:size])
        if rows:
            self.last = (rows[-1][0], rows[-1][1])
        return [(lot_id, member_id) for _, lot_id, member_id in rows]


def run_batches(job: str, runners: Iterable[Callable[[], int]], progress: Progress | None,
                max_batches: int | None) -> JobResult:
    """Call each runner (one per market, say) until it finds nothing more to
    do; a runner answers how many rows its batch did, 0 when done."""
    result = JobResult(job)
    for run_batch in runners:
        while max_batches is None or result.batches < max_batches:
            done = run_batch()
            if done == 0:
                break
            result.rows += done
            result.batches += 1
            if progress:
                progress(done)
    return result


# --- schedules ---------------------------------------------------------

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
