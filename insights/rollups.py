"""`insights_rollup`: the ledger and the cohorts added up, so that the
liability and retention reports read a few hundred rolled-up rows instead
of every entry, lot and purchase.

The rolled-up tables hold sums, and sums add: each run adds the ledger
entries, lots and lot movements that came since its last run (ids above its
marks, up to new marks) to `LedgerDay` and `LedgerMonth` (points per
market, day or month, and kind) and `LotDay` (points per market, expiry day and availability day: each
lot's points and each of its movements). The report adds what lies above
the marks live (`insights.selectors`), so its answer stays the ledger's as
it is when asked, whenever this job last ran.

A mark may only pass ids whose transactions are over: ids are drawn from a
sequence before commit, so a transaction still open may hold an id below
one that is already visible. The job reads each sequence's last value,
then the start of the oldest transaction still open on the database; when
that one began after the read, every id up to the read value belongs to a
transaction that has ended, and the marks move there. Otherwise they stay
(the next run moves them): never past an id that might still commit.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from celery.schedules import crontab
from django.db import connection, transaction
from django.utils import timezone

from core.jobs import JobResult, Progress, job, set_based
from insights.models import Rollup

logger = logging.getLogger(__name__)

LOCK_KEY = 0x1A52  # the advisory lock of insights_rollup (insights_refresh's is 0x1A51)

_SAMPLE_SQL = """
SELECT clock_timestamp(),
       COALESCE(pg_sequence_last_value(
           pg_get_serial_sequence('loyalty_ledgerentry', 'id')::regclass), 0),
       COALESCE(pg_sequence_last_value(
           pg_get_serial_sequence('loyalty_lotmovement', 'id')::regclass), 0),
       COALESCE(pg_sequence_last_value(
           pg_get_serial_sequence('members_member', 'id')::regclass), 0)
"""

# Purchases and returns have no sequence (uuids): they are cut by the time
# they were created, which a transaction stamps after it began. The moment
# lies a minute before the oldest open transaction (or the sample), for a
# stamp taken just before its statement began (autocommit).
MARGIN = timedelta(minutes=1)

# Read after the sample: the oldest transaction open on this database but
# ours, and whether a session is hidden from this role (another role's,
# without pg_read_all_stats: its transaction unknown).
_OLDEST_SQL = """
SELECT MIN(xact_start), COALESCE(BOOL_OR(backend_type = 'client backend' AND state IS NULL), FALSE)
FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""

_LEDGER_DAYS_SQL = """
WITH days AS (
    SELECT m.market_id, (e.created_at AT TIME ZONE mk.time_zone)::date AS day, e.kind,
           SUM(e.points) AS points
    FROM loyalty_ledgerentry e
    JOIN members_member m ON m.id = e.member_id
    JOIN club_market mk ON mk.id = m.market_id
    WHERE e.id > %(entry_from)s AND e.id <= %(entry_to)s
    GROUP BY 1, 2, 3
),
by_day AS (
    INSERT INTO insights_ledgerday (market_id, day, kind, points)
    SELECT market_id, day, kind, points FROM days
    ON CONFLICT (market_id, day, kind)
    DO UPDATE SET points = insights_ledgerday.points + EXCLUDED.points
)
INSERT INTO insights_ledgermonth (market_id, month, kind, points)
SELECT market_id, date_trunc('month', day)::date, kind, SUM(points) FROM days GROUP BY 1, 2, 3
ON CONFLICT (market_id, month, kind)
DO UPDATE SET points = insights_ledgermonth.points + EXCLUDED.points
"""

# A lot counts with its entry (they are written in one transaction).
_LOT_DAYS_SQL = """
INSERT INTO insights_lotday (market_id, expires_on, available_on, points)
SELECT market_id, expires_on, available_on, SUM(points) FROM (
    SELECT m.market_id, l.expires_on, l.available_on, l.points
    FROM loyalty_lot l JOIN members_member m ON m.id = l.member_id
    WHERE l.entry_id > %(entry_from)s AND l.entry_id <= %(entry_to)s
    UNION ALL
    SELECT m.market_id, l.expires_on, l.available_on, mv.points
    FROM loyalty_lotmovement mv
    JOIN loyalty_lot l ON l.id = mv.lot_id
    JOIN members_member m ON m.id = l.member_id
    WHERE mv.id > %(movement_from)s AND mv.id <= %(movement_to)s
) rows
GROUP BY 1, 2, 3
ON CONFLICT (market_id, expires_on, available_on)
DO UPDATE SET points = insights_lotday.points + EXCLUDED.points
"""


# The cohorts' counts as of one pair of marks less as of another, over the
# members whose count may differ: those with a purchase or a return created
# since the earlier moment, and those above the earlier member mark. As of
# marks (moment C, member W), a member counts when its id is at most W, in
# each month with a purchase created before C that was not fully returned
# by then (its returns created before C). `{members}` narrows the members
# (a market, its cohorts); as of now is C = infinity, W = infinity.
# (Members' market and enrolment never change; a purchase's member, time
# and total neither.)
_COHORT_CHANGES_SQL = """
WITH affected AS ({affected}),
cohorts AS (
    SELECT m.id, m.market_id, mk.time_zone AS tz,
           date_trunc('month', m.enrolled_at AT TIME ZONE mk.time_zone)::date AS cohort,
           m.id <= %(member_from)s AS was_in, m.id <= %(member_to)s AS is_in
    FROM affected a
    JOIN members_member m ON m.id = a.id
    JOIN club_market mk ON mk.id = m.market_id
    WHERE {members}
),
returned AS (
    SELECT r.purchase_id,
           SUM(r.total) FILTER (WHERE r.created_at >= %(moment_from)s::timestamptz) AS since_from,
           SUM(r.total) FILTER (WHERE r.created_at >= %(moment_to)s::timestamptz) AS since_to
    FROM loyalty_return r WHERE r.created_at >= %(moment_from)s::timestamptz
    GROUP BY r.purchase_id
),
counted AS (
    SELECT c.market_id, c.cohort, p.member_id,
           date_trunc('month', p.occurred_at AT TIME ZONE c.tz)::date AS month,
           c.was_in AND p.created_at < %(moment_from)s::timestamptz
             AND NOT (p.total > 0 AND p.returned_amount - COALESCE(rt.since_from, 0) >= p.total)
             AS was_counted,
           c.is_in AND p.created_at < %(moment_to)s::timestamptz
             AND NOT (p.total > 0 AND p.returned_amount - COALESCE(rt.since_to, 0) >= p.total)
             AS is_counted
    FROM cohorts c
    JOIN loyalty_purchase p ON p.member_id = c.id
    LEFT JOIN returned rt ON rt.purchase_id = p.id
)
SELECT market_id, cohort, month,
       COUNT(DISTINCT member_id) FILTER (WHERE is_counted)
       - COUNT(DISTINCT member_id) FILTER (WHERE was_counted) AS active
FROM counted
GROUP BY 1, 2, 3
HAVING COUNT(DISTINCT member_id) FILTER (WHERE is_counted)
       <> COUNT(DISTINCT member_id) FILTER (WHERE was_counted)
"""

# The members to look at since marks (moment, member id): every one the
# first time (nothing rolled up), else the few with news.
_AFFECTED_ALL = "SELECT id FROM members_member"
_AFFECTED_SINCE = """
SELECT p.member_id AS id FROM loyalty_purchase p
WHERE p.created_at >= %(moment_from)s::timestamptz
UNION
SELECT p.member_id FROM loyalty_return r JOIN loyalty_purchase p ON p.id = r.purchase_id
WHERE r.created_at >= %(moment_from)s::timestamptz
UNION
SELECT id FROM members_member WHERE id > %(member_from)s
"""

# The cohorts' sizes of the members between two member marks.
_COHORT_SIZES_SQL = """
SELECT m.market_id, date_trunc('month', m.enrolled_at AT TIME ZONE mk.time_zone)::date, COUNT(*)
FROM members_member m JOIN club_market mk ON mk.id = m.market_id
WHERE m.id > %(member_from)s AND m.id <= %(member_to)s AND {members}
GROUP BY 1, 2
"""


def cohort_changes(
    *,
    moment_from: datetime | None,
    member_from: int,
    moment_to: datetime | None = None,
    member_to: int | None = None,
    members: str = "TRUE",
    params: dict | None = None,
) -> tuple[list[tuple[int, date, int]], list[tuple[int, date, date, int]]]:
    """(sizes, active): per (market, cohort) the members and per (market,
    cohort, month) the active members counted as of the second marks less
    as of the first (None: no moment yet / now; member_to None: every
    member). `members` is a condition on `m` (members_member) with its
    `params`."""
    marks = {
        "moment_from": moment_from if moment_from is not None else "-infinity",
        "member_from": member_from,
        "moment_to": moment_to if moment_to is not None else "infinity",
        "member_to": member_to if member_to is not None else 2**62,
        **(params or {}),
    }
    first = moment_from is None and member_from == 0
    affected = _AFFECTED_ALL if first else _AFFECTED_SINCE
    with connection.cursor() as cursor:
        cursor.execute(_COHORT_SIZES_SQL.format(members=members), marks)
        sizes = cursor.fetchall()
        cursor.execute(_COHORT_CHANGES_SQL.format(affected=affected, members=members), marks)
        active = cursor.fetchall()
    return sizes, active


def _cohorts_add(
    sizes: list[tuple[int, date, int]], active: list[tuple[int, date, date, int]]
) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO insights_cohortsize (market_id, cohort, members) VALUES (%s, %s, %s) "
            "ON CONFLICT (market_id, cohort) DO UPDATE "
            "SET members = insights_cohortsize.members + EXCLUDED.members",
            sizes,
        )
        cursor.executemany(
            "INSERT INTO insights_cohortmonth (market_id, cohort, month, active) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (market_id, cohort, month) DO UPDATE "
            "SET active = insights_cohortmonth.active + EXCLUDED.active",
            active,
        )


def _one(sql: str, params: dict | None = None) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return cursor.fetchone()


def _execute(sql: str, params: dict) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def rollup_add(*, now: datetime | None = None) -> int:
    """Add the ledger's new entries, lots and movements, and the cohorts'
    changes, to the rolled-up tables, in one transaction. Answers how many
    ledger entries it added (0 when a transaction older than the sample
    kept the marks where they were)."""
    with transaction.atomic():
        # One run at a time: a second waits, then finds nothing new.
        _one("SELECT pg_advisory_xact_lock(%(key)s)", {"key": LOCK_KEY})
        rollup = Rollup.objects.select_for_update().filter(pk=1).first() or Rollup(pk=1)
        sampled_at, entry_to, movement_to, member_to = _one(_SAMPLE_SQL)
        # A fresh view of the backends (one read earlier in this
        # transaction would be served again).
        _one("SELECT pg_stat_clear_snapshot()")
        oldest, hidden = _one(_OLDEST_SQL)
        moment_to = min(sampled_at, oldest or sampled_at) - MARGIN
        if rollup.purchases_before is not None:
            moment_to = max(moment_to, rollup.purchases_before)
        if hidden:
            logger.warning("insights_rollup: sessions hidden from this role: marks kept")
            oldest, moment_to = sampled_at, rollup.purchases_before
        if oldest is not None and oldest <= sampled_at:
            logger.info("insights_rollup: a transaction from %s is open: marks kept", oldest)
            entry_to, movement_to = rollup.entry_id, rollup.movement_id
            member_to = rollup.member_id
        marks = {
            "entry_from": rollup.entry_id,
            "entry_to": max(entry_to, rollup.entry_id),
            "movement_from": rollup.movement_id,
            "movement_to": max(movement_to, rollup.movement_id),
        }
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM loyalty_ledgerentry WHERE id > %(entry_from)s "
                "AND id <= %(entry_to)s",
                marks,
            )
            added = int(cursor.fetchone()[0])
        _execute(_LEDGER_DAYS_SQL, marks)
        _execute(_LOT_DAYS_SQL, marks)
        member_to = max(member_to, rollup.member_id)
        if moment_to is not None:  # None: no moment yet (nothing to count as of)
            _cohorts_add(
                *cohort_changes(
                    moment_from=rollup.purchases_before,
                    member_from=rollup.member_id,
                    moment_to=moment_to,
                    member_to=member_to,
                )
            )
        rollup.entry_id = marks["entry_to"]
        rollup.movement_id = marks["movement_to"]
        rollup.member_id = member_to
        rollup.purchases_before = moment_to
        rollup.rolled_at = now or timezone.now()
        rollup.save()
    return added


@job(title="insights: roll up the ledger", schedule=crontab(minute="*/15"), unit="entries")
def insights_rollup(*, as_of: datetime, progress: Progress | None = None) -> JobResult:
    """Add the ledger entries, lots and lot movements booked since the last
    run to the liability report's rolled-up sums (what came after is added
    live when the report is asked). `as_of` is when it ran: the marks are
    the ledger's own, whatever the day."""
    result = JobResult("insights_rollup")
    if not set_based():
        logger.warning("insights_rollup needs PostgreSQL: nothing rolled up")
        return result
    result.rows = rollup_add(now=as_of)
    result.batches = 1
    if progress:
        progress(result.rows)
    return result
