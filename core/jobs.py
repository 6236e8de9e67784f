"""The batch-job machinery every domain's jobs share.

A job is declared once, on its function, and the rest follows from that
declaration:

    @job(title="points: expire", schedule=crontab(minute="10"))
    def points_expire(*, as_of: datetime, batch_size: int = BATCH,
                      progress: Progress | None = None,
                      max_batches: int | None = None) -> JobResult:
        \"\"\"Lots past their date lose what remains.\"\"\"

- the name is the function's (`points_expire`), and so is the help (the
  docstring's first paragraph);
- its Celery task, `<app>.<name>` (`loyalty.points_expire`) unless `task=`
  names it, with TASK_OPTIONS; it takes `as_of` as an ISO string and any of
  the job's keyword options. The worker knows it once the module declaring
  the job is imported: each app's `tasks.py` imports its job modules, and
  the worker's autodiscovery imports `tasks.py` (config/celery.py);
- its beat entry, named `title` (the name staff see in the admin), every
  `schedule` seconds or on a `crontab` (in UTC): `schedules()` lists them and
  `schedules_install()` puts them in django-celery-beat's tables;
- its management command, `manage.py <name> [--as-of ...]`, with a progress
  bar on a terminal: a module per job under the app's management/commands/
  (Django finds commands by file) that says `Command = job_command(<job>)`.

`as_of` is read one way everywhere (`as_of_parse`): a datetime, or an ISO
datetime or date; naive in the default time zone; none means now. The
declared function receives an aware datetime.

The rest is what the batches share: results, progress, keyset pages and the
batch runner.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from time import perf_counter
from typing import Any

import structlog
from celery import shared_task
from celery.schedules import crontab
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import F
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import autodiscover_modules
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from tqdm import tqdm

from core.metrics import job_observe

log = structlog.get_logger("lojal.jobs")

Progress = Callable[[int], None]
# One batch of a job: how many rows it did (0 when its rows were done
# already), or None when there is nothing more to do.
Batch = Callable[[], int | None]


@dataclass
class JobResult:
    job: str
    rows: int = 0
    batches: int = 0

    def __str__(self) -> str:
        return f"{self.job}: {self.rows} rows in {self.batches} batches"


def set_based() -> bool:
    return connection.vendor == "postgresql"


# --- as_of ---------------------------------------------------------------------


def as_of_parse(value: datetime | date | str | None) -> datetime:
    """The moment a job runs as of: a datetime, or an ISO datetime or date
    (a date is its midnight); naive in the default time zone; None or ""
    is now. Raises ValueError for anything else."""
    if value is None or value == "":
        return timezone.now()
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = parse_datetime(text) or datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO datetime or date: {value!r}") from None
        value = parsed
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value


# --- the declaration -----------------------------------------------------------

# Idempotent jobs: they ack late and are re-queued when a worker dies mid-run
# (reject_on_worker_lost); a retry comes back well inside the Redis
# visibility timeout (an hour), and a time limit ends a stuck run.
TASK_OPTIONS: dict[str, Any] = {
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

JobFunction = Callable[..., JobResult]
Schedule = int | dict[str, str]

_CRONTAB_FIELDS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")


def _schedule(when: int | crontab) -> Schedule:
    """Every N seconds, or the fields of a crontab that are not `*` (the
    columns of django-celery-beat's CrontabSchedule)."""
    if isinstance(when, crontab):
        fields = {name: str(getattr(when, f"_orig_{name}")) for name in _CRONTAB_FIELDS}
        return {name: value for name, value in fields.items() if value != "*"}
    if isinstance(when, int) and when > 0:
        return when
    raise TypeError(f"a job's schedule is seconds or a crontab, not {when!r}")


@dataclass(eq=False)
class Job:
    """A declared job. Calling it calls the function, with `as_of` read by
    `as_of_parse` (so a datetime, an ISO string or nothing for now), and
    accounts for the run once, however it was started (task, command, a
    caller): a `job finished` or `job failed` log line and the
    `lojal_job_*` metrics (core/metrics.py)."""

    name: str
    func: JobFunction = field(repr=False)
    task_name: str
    title: str
    schedule: Schedule
    help: str
    unit: str
    task: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        functools.update_wrapper(self, self.func, updated=())
        self.task = self._task()

    def __call__(self, *, as_of: datetime | date | str | None = None, **options: Any) -> JobResult:
        when = as_of_parse(as_of)
        started = perf_counter()
        try:
            result = self.func(as_of=when, **options)
        except Exception:
            seconds = perf_counter() - started
            job_observe(job=self.name, outcome="error", seconds=seconds, rows=0)
            log.exception("job failed", job=self.name, duration_ms=round(seconds * 1000, 2))
            raise
        seconds = perf_counter() - started
        job_observe(job=self.name, outcome="ok", seconds=seconds, rows=result.rows)
        log.info(
            "job finished",
            job=self.name,
            rows=result.rows,
            batches=result.batches,
            duration_ms=round(seconds * 1000, 2),
        )
        return result

    def _task(self) -> Any:
        def run(as_of: str | None = None, **options: Any) -> str:
            return str(self(as_of=as_of, **options))

        run.__name__ = run.__qualname__ = self.name
        run.__module__ = self.func.__module__
        run.__doc__ = self.help
        return shared_task(name=self.task_name, **TASK_OPTIONS)(run)


JOBS: dict[str, Job] = {}


def job(
    *,
    title: str,
    schedule: int | crontab,
    name: str | None = None,
    task: str | None = None,
    help: str | None = None,
    unit: str = "rows",
) -> Callable[[JobFunction], Job]:
    """Declare the function a job: its task, beat entry and command follow.

    `title` names its beat entry; `schedule` is every N seconds or a crontab
    (UTC). `name` (the command's) defaults to the function's, `task` to
    `<app>.<name>`, `help` to the docstring's first paragraph; `unit` is what the
    progress bar counts."""

    when = _schedule(schedule)

    def declare(func: JobFunction) -> Job:
        job_name = name or func.__name__
        known = JOBS.get(job_name)
        if known is not None and (known.func.__module__, known.func.__qualname__) != (
            func.__module__,
            func.__qualname__,
        ):
            raise ValueError(
                f"two jobs named {job_name}: {known.func.__module__} and {func.__module__}"
            )
        spec = Job(
            name=job_name,
            func=func,
            task_name=task or f"{func.__module__.split('.')[0]}.{job_name}",
            title=title,
            schedule=when,
            help=help or " ".join((func.__doc__ or job_name).strip().split("\n\n")[0].split()),
            unit=unit,
        )
        JOBS[job_name] = spec
        return spec

    return declare


def jobs() -> dict[str, Job]:
    """Every declared job, by name. The apps' `tasks` modules import the
    modules that declare them; importing those, as the worker does, finds
    them all."""
    autodiscover_modules("tasks")
    return dict(sorted(JOBS.items()))


# --- the command -----------------------------------------------------------------


class JobOptionError(ValueError):
    """A job's option names nothing (`--market XX`): the command says so and
    exits 1, the task fails."""


def job_command(spec: Job, options: dict[str, str] | None = None) -> type[BaseCommand]:
    """The management command of a job: `--as-of`, a progress bar on a
    terminal, the result on stdout. `options` names the job's own keyword
    options (a text each, with its help): `--market` for `market`; one not
    given is not passed."""
    extra = dict(options or {})

    class Command(BaseCommand):
        help = spec.help

        def add_arguments(self, parser: CommandParser) -> None:
            parser.add_argument(
                "--as-of",
                default=None,
                help="ISO datetime or date to run as of (naive: the default time zone; "
                "default: now).",
            )
            for name, help_text in extra.items():
                parser.add_argument(f"--{name.replace('_', '-')}", default=None, help=help_text)

        def handle(self, *args: Any, **options: Any) -> None:
            try:
                as_of = as_of_parse(options["as_of"])
            except ValueError as exc:
                raise CommandError(f"--as-of: {exc}") from None
            given = {name: options[name] for name in extra if options.get(name) is not None}
            bar = tqdm(unit=f" {spec.unit}", disable=not sys.stderr.isatty(), file=sys.stderr)
            try:
                result = spec(as_of=as_of, progress=bar.update, **given)
            except JobOptionError as exc:
                raise CommandError(str(exc)) from None
            finally:
                bar.close()
            self.stdout.write(f"{result} (as of {as_of.isoformat()})")

    Command.__qualname__ = Command.__name__ = f"Command_{spec.name}"
    Command.__module__ = spec.func.__module__
    return Command


# --- batches -----------------------------------------------------------------------


class Keyset:
    """Walks a partial index on (date, id) in order, batch after batch, so
    that each batch starts where the last ended rather than rescanning the
    rows already done (which a million-row run would pay for quadratically).
    A page is (id, member id) pairs; `member` names the member's field."""

    def __init__(self, member: str = "member_id") -> None:
        self.last: tuple[date, int] | None = None
        self.member = member

    def page(self, qs: Any, date_field: str, size: int) -> list[tuple[int, int]]:
        if self.last is not None:
            # A row comparison, (date, id) > (last date, last id): the index
            # scan starts there. The same condition spelt with OR was only a
            # filter, so each page scanned the index from its start, through
            # every entry the batches before had left dead (a million-row
            # run paid for that quadratically: most lots expire on one date).
            qs = qs.filter(TupleGreaterThan(Tuple(F(date_field), F("id")), self.last))
        rows = list(qs.order_by(date_field, "id").values_list(date_field, "id", self.member)[:size])
        if rows:
            self.last = (rows[-1][0], rows[-1][1])
        return [(row_id, member_id) for _, row_id, member_id in rows]


class IdSlices:
    """Walks the ids of a query's rows in slices of `size` ids, from the
    lowest to the highest, without sorting them: for a batch that does its
    slice in one statement. The bounds are read at the first slice."""

    def __init__(self, qs: Any, size: int) -> None:
        self.qs, self.size = qs, size
        self.after: int | None = None
        self.high = 0

    def next(self) -> tuple[int, int] | None:
        """The next (after, upto] range, or None when past the highest id."""
        if self.after is None:
            ids = self.qs.order_by().values_list("id", flat=True)
            low, high = ids.order_by("id").first(), ids.order_by("-id").first()
            if low is None:
                self.after, self.high = 0, 0
                return None
            self.after, self.high = low - 1, high
        if self.after >= self.high:
            return None
        after = self.after
        self.after += self.size
        return after, after + self.size


def run_batches(
    job: str, batches: Iterable[Batch], progress: Progress | None, max_batches: int | None
) -> JobResult:
    """Call each batch function (one per market, say) until it answers None,
    nothing more to do; each answer is how many rows that batch did.
    `max_batches` stops the whole job after that many batches."""
    result = JobResult(job)
    for run_batch in batches:
        while max_batches is None or result.batches < max_batches:
            done = run_batch()
            if done is None:
                break
            result.rows += done
            result.batches += 1
            if progress:
                progress(done)
    return result


# --- schedules -----------------------------------------------------------------------

# Not a job: proves to /health/ that a worker consumes the queue (core.tasks).
HEARTBEAT = ("worker heartbeat", "config.heartbeat", 30)


def schedules() -> dict[str, tuple[str, Schedule]]:
    """Beat's entries by name: the worker heartbeat and every job's."""
    title, task, every = HEARTBEAT
    entries: dict[str, tuple[str, Schedule]] = {title: (task, every)}
    for spec in jobs().values():
        entries[spec.title] = (spec.task_name, spec.schedule)
    return entries


def schedules_install() -> int:
    """Put the entries missing from django-celery-beat's tables there; an
    entry that is there is left as it is (staff may have changed it)."""
    created = 0
    with transaction.atomic():
        for name, (task, when) in schedules().items():
            if PeriodicTask.objects.filter(name=name).exists():
                continue  # staff may have changed it: leave it
            if isinstance(when, int):
                interval, _ = IntervalSchedule.objects.get_or_create(
                    every=when, period=IntervalSchedule.SECONDS
                )
                PeriodicTask.objects.create(name=name, task=task, interval=interval)
            else:
                crontab_row, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **when)
                PeriodicTask.objects.create(name=name, task=task, crontab=crontab_row)
            created += 1
    return created
