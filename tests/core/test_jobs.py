"""The job framework (core/jobs.py): one declaration per job gives its Celery
task, its beat entry and its management command, and `as_of` is read one
way everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from config.celery import app
from core.jobs import (
    HEARTBEAT,
    JOBS,
    TASK_OPTIONS,
    IdSlices,
    Job,
    JobResult,
    Keyset,
    as_of_parse,
    job,
    job_command,
    jobs,
    run_batches,
    schedules,
)
from core.models import OutboxEvent
from core.outbox import Event, outbox_add_many, outbox_add_select

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2026-01-01T00:00:00+00:00"

# Every job the service runs, by command name, with its task's name: the
# names the beat tables, the worker's queue and operators' scripts know.
EXPECTED = {
    "points_mature": "loyalty.points_mature",
    "points_expire": "loyalty.points_expire",
    "holds_release": "loyalty.holds_release",
    "points_expiry_notices": "loyalty.points_expiry_notices",
    "tiers_evaluate": "loyalty.tiers_evaluate",
    "vouchers_expire": "rewards.vouchers_expire",
    "missions_close": "rewards.missions_close",
    "birthday_gifts": "rewards.birthday_gifts",
    "tier_upgrade_gifts": "rewards.tier_upgrade_gifts",
    "welcome_gifts": "rewards.welcome_gifts",
    "members_retention": "integrations.members_retention",
    "webhooks_dispatch": "integrations.webhooks_dispatch",
    "webhooks_purge": "integrations.webhooks_purge",
    "idempotency_purge": "core.idempotency_purge",
    "experiments_freeze": "campaigns.experiments_freeze",
    "insights_refresh": "insights.insights_refresh",
    "insights_rollup": "insights.insights_rollup",
}


def test_every_job_is_declared_under_its_old_names():
    assert {name: spec.task_name for name, spec in jobs().items()} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_job_has_a_task_a_beat_entry_and_a_command(name):
    spec = jobs()[name]
    app.loader.import_default_modules()  # as the worker does at start
    task = app.tasks[spec.task_name]
    for option in (
        "acks_late",
        "reject_on_worker_lost",
        "time_limit",
        "soft_time_limit",
        "autoretry_for",
        "max_retries",
    ):
        assert getattr(task, option) == TASK_OPTIONS[option], option
    assert spec.task.name == spec.task_name
    assert schedules()[spec.title] == (spec.task_name, spec.schedule)
    assert get_commands()[name] == spec.func.__module__.split(".")[0]
    command = load_command_class(get_commands()[name], name)
    assert command.help == spec.help and spec.help
    options = command.create_parser("manage.py", name).parse_args(["--as-of", AS_OF])
    assert options.as_of == AS_OF


def test_beat_has_the_heartbeat_and_one_entry_per_job():
    entries = schedules()
    title, task, every = HEARTBEAT
    assert entries[title] == (task, every)
    assert len(entries) == len(EXPECTED) + 1
    assert sorted(task for task, _ in entries.values()) == sorted([*EXPECTED.values(), task])
    assert entries["points: expire"] == ("loyalty.points_expire", {"minute": "10"})
    assert entries["points: expiry notices"] == (
        "loyalty.points_expiry_notices",
        {"minute": "20", "hour": "6"},
    )
    assert entries["holds: release expired"] == ("loyalty.holds_release", 60)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_job_command_runs_as_of_a_given_moment(name):
    out = StringIO()
    call_command(name, "--as-of", AS_OF, stdout=out)
    assert out.getvalue().startswith(f"{name}: ")
    assert out.getvalue().rstrip().endswith(f"(as of {AS_OF})")


@pytest.mark.django_db
def test_a_bad_as_of_is_refused_by_the_command():
    with pytest.raises(CommandError, match="--as-of"):
        call_command("points_expire", "--as-of", "yesterday")


@pytest.mark.django_db
def test_every_task_runs_its_job_with_as_of_as_an_iso_string():
    for spec in jobs().values():
        assert spec.task(as_of=AS_OF).startswith(f"{spec.name}: ")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_manage_py_runs_each_job_with_as_of():
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}",
        }
    )
    # One process runs them all, through manage.py's own entry point.
    script = (
        "import sys\n"
        "from django.core.management import execute_from_command_line\n"
        f"for name in {sorted(EXPECTED)!r}:\n"
        f"    execute_from_command_line(['manage.py', name, '--as-of', {AS_OF!r}])\n"
    )
    single = subprocess.run(
        [sys.executable, "manage.py", "points_expire", "--as-of", AS_OF],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert single.returncode == 0, single.stderr
    assert single.stdout.startswith("points_expire: ")
    assert single.stdout.rstrip().endswith(f"(as of {AS_OF})")
    every = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert every.returncode == 0, every.stderr
    lines = every.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == sorted(EXPECTED)
    assert all(line.endswith(f"(as of {AS_OF})") for line in lines)


# --- as_of ---------------------------------------------------------------------


def test_as_of_is_read_one_way(settings):
    stockholm = ZoneInfo("Europe/Stockholm")
    settings.TIME_ZONE = "Europe/Stockholm"
    aware = datetime(2026, 1, 1, tzinfo=UTC)
    assert as_of_parse(AS_OF) == aware
    assert as_of_parse("2026-01-01T01:00:00+01:00") == aware
    assert as_of_parse("2026-01-01 00:00:00Z") == aware
    assert as_of_parse(aware) is aware
    # Naive, and a date (its midnight): in the default time zone.
    assert as_of_parse("2026-01-01T00:00:00") == datetime(2026, 1, 1, tzinfo=stockholm)
    assert as_of_parse("2026-01-01") == datetime(2026, 1, 1, tzinfo=stockholm)
    assert as_of_parse(date(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=stockholm)
    assert as_of_parse(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=stockholm)
    assert abs(as_of_parse(None) - timezone.now()) < timedelta(seconds=5)
    assert abs(as_of_parse("") - timezone.now()) < timedelta(seconds=5)
    for bad in ("yesterday", "2026-13-01", "2026-01-01T25:00"):
        with pytest.raises(ValueError):
            as_of_parse(bad)


# --- the declaration ---------------------------------------------------------------


def test_a_declaration_gives_the_job_its_task_entry_and_command():
    seen = []

    def sample_job(*, as_of: datetime, progress=None, extra: int = 0) -> JobResult:
        """A sample job.

        Its details."""
        seen.append((as_of, extra))
        if progress:
            progress(3)
        return JobResult("sample_job", rows=3, batches=1)

    try:
        spec = job(title="sample: every minute", schedule=crontab(minute="*/5", hour="1"))(
            sample_job
        )
        assert isinstance(spec, Job) and JOBS["sample_job"] is spec
        assert (spec.name, spec.task_name, spec.help) == (
            "sample_job",
            "tests.sample_job",
            "A sample job.",
        )
        assert spec.schedule == {"minute": "*/5", "hour": "1"}
        assert spec.__doc__ == sample_job.__doc__ and spec.__wrapped__ is sample_job
        # Called like the function, with as_of read by as_of_parse.
        assert spec(as_of=AS_OF, extra=2).rows == 3
        assert seen[-1] == (datetime(2026, 1, 1, tzinfo=UTC), 2)
        assert spec.task(as_of=AS_OF, extra=1) == "sample_job: 3 rows in 1 batches"
        assert seen[-1][1] == 1
        assert schedules()["sample: every minute"] == (
            "tests.sample_job",
            {"minute": "*/5", "hour": "1"},
        )
        out = StringIO()
        command = job_command(spec)(stdout=out)
        command.run_from_argv(["manage.py", "sample_job", "--as-of", AS_OF])
        assert out.getvalue() == f"sample_job: 3 rows in 1 batches (as of {AS_OF})\n"
        with pytest.raises(ValueError, match="two jobs named"):
            job(title="again", schedule=60, name="sample_job")(lambda **kwargs: JobResult("x"))
        with pytest.raises(TypeError):
            job(title="never", schedule=0)
    finally:
        JOBS.pop("sample_job", None)


# --- batches -----------------------------------------------------------------------


def test_run_batches_runs_each_until_none_counts_empty_batches_and_stops_at_max():
    def batches(*answers):
        left = list(answers)
        return lambda: left.pop(0)

    seen = []
    result = run_batches(
        "job", [batches(2, 0, 3, None), batches(None), batches(1, None)], seen.append, None
    )
    assert (result.rows, result.batches, seen) == (6, 4, [2, 0, 3, 1])
    stopped = run_batches("job", [batches(2, 2, 2, None), batches(5, None)], None, 2)
    assert (stopped.rows, stopped.batches) == (4, 2)


@pytest.mark.django_db
def test_id_slices_walk_from_the_lowest_id_to_the_highest(make_member):
    from members.models import Member

    ids = sorted(make_member().pk for _ in range(5))
    slices = IdSlices(Member.objects.filter(pk__in=ids), 2)
    spans = []
    while (span := slices.next()) is not None:
        spans.append(span)
    assert spans[0] == (ids[0] - 1, ids[0] + 1)
    assert spans[-1][1] >= ids[-1]
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert IdSlices(Member.objects.none(), 2).next() is None


@pytest.mark.django_db
def test_keyset_walks_rows_of_one_date_page_by_page_each_once(make_member):
    """Most of a job's rows share one date (a million lots expiring at the end
    of a month): the pages go on by id within it, and none is seen twice."""
    from members.models import Member

    members = [make_member() for _ in range(7)]
    days = [date(2026, 1, 31)] * 5 + [date(2026, 2, 1)] * 2
    for member, day in zip(members, days, strict=True):
        Member.objects.filter(pk=member.pk).update(tier_valid_until=day)
    expected = sorted((day, member.pk) for member, day in zip(members, days, strict=True))
    mine = Member.objects.filter(pk__in=[m.pk for m in members], tier_valid_until__isnull=False)
    after = Keyset(member="pk")
    seen = []
    while page := after.page(mine, "tier_valid_until", 2):
        seen += [row_id for row_id, _ in page]
    assert seen == [pk for _, pk in expected]


@pytest.mark.postgres
@pytest.mark.django_db
def test_keyset_pages_after_the_first_start_at_the_last_row_by_row_comparison():
    """(date, id) > (last date, last id) as one row comparison, which an index
    on (date, id) starts its scan at; spelt with OR it was a filter over the
    index from its start, through the entries earlier batches left dead."""
    from django.test.utils import CaptureQueriesContext

    from members.models import Member

    after = Keyset(member="pk")
    after.last = (date(2026, 1, 31), 41)
    with CaptureQueriesContext(connection) as queries:
        after.page(Member.objects.all(), "tier_valid_until", 2)
    (sql,) = [q["sql"] for q in queries.captured_queries]
    assert '("members_member"."tier_valid_until", "members_member"."id") >' in sql
    assert " OR " not in sql


# --- the outbox's bulk writers ---------------------------------------------------------


@pytest.mark.django_db
def test_outbox_add_many_records_each_event_once(make_member):
    member = make_member()
    events = [
        Event("test.topic", f"test.topic:{n}", member.pk, {"n": n, "on": date(2026, 1, 1)})
        for n in range(3)
    ]
    assert outbox_add_many(events) == 3
    assert outbox_add_many([*events, Event("test.topic", "test.topic:3")]) == 1
    assert outbox_add_many([]) == 0
    stored = OutboxEvent.objects.filter(topic="test.topic").order_by("dedupe_key")
    assert [e.payload for e in stored][:3] == [{"n": n, "on": "2026-01-01"} for n in range(3)]
    assert stored.first().member_id == member.pk


@pytest.mark.postgres
@pytest.mark.django_db
def test_outbox_add_select_records_what_the_select_yields_once(make_member):
    member = make_member()
    select = (
        "SELECT 'test.select', 'test.select:' || m.id, m.id, "
        "json_build_object('member_number', m.member_number)::jsonb "
        "FROM members_member m WHERE m.id = %(member)s"
    )
    assert outbox_add_select(select, {"member": member.pk}) == 1
    assert outbox_add_select(select, {"member": member.pk}) == 0
    event = OutboxEvent.objects.get(dedupe_key=f"test.select:{member.pk}")
    assert event.payload == {"member_number": member.member_number}
    assert event.member_id == member.pk


@pytest.mark.django_db
def test_the_evaluation_records_the_same_tier_event_set_based_as_member_by_member(make_member):
    from club.models import Tier
    from loyalty import tiers
    from members.models import Member

    now = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    members = [make_member(), make_member()]
    Member.objects.filter(pk__in=[m.pk for m in members]).update(
        tier=Tier.objects.get(code="gold"), tier_valid_until=date(2026, 6, 14)
    )
    assert tiers.tiers_evaluate(as_of=now, max_batches=1, batch_size=1).rows == 1
    tiers._evaluate_portable([members[1].pk], now.date())  # the SQLite path
    events = {
        e.member_id: e for e in OutboxEvent.objects.filter(topic="tier.changed", member__in=members)
    }
    for member in members:
        assert events[member.pk].payload == {
            "member_number": member.member_number,
            "from": "gold",
            "to": "silver",
            "cause": "evaluation",
            "valid_until": "2027-06-15",
        }
        assert events[member.pk].dedupe_key.startswith("tier.changed:")
