"""`insights_rollup`: the ledger added up, so that the liability report
reads a few hundred rolled-up rows instead of every entry and lot.

The rolled-up tables hold sums, and sums add: each run adds the ledger
entries, lots and lot movements that came since its last run (ids above its
marks, up to new marks) to `LedgerDay` (points per market, day and kind)
and `LotDay` (points per market, expiry day and availability day: each
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
from datetime import datetime

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
           pg_get_serial_sequence('loyalty_lotmovement', 'id')::regclass), 0)
"""

# Read after the sample: the oldest transaction open on this database but
# ours.
_OLDEST_SQL = """
SELECT MIN(xact_start) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
"""

_LEDGER_DAYS_SQL = """
INSERT INTO insights_ledgerday (market_id, day, kind, points)
SELECT m.market_id, (e.created_at AT TIME ZONE mk.time_zone)::date, e.kind, SUM(e.points)
FROM loyalty_ledgerentry e
JOIN members_member m ON m.id = e.member_id
JOIN club_market mk ON mk.id = m.market_id
WHERE e.id > %(entry_from)s AND e.id <= %(entry_to)s
GROUP BY 1, 2, 3
ON CONFLICT (market_id, day, kind) DO UPDATE SET points = insights_ledgerday.points + EXCLUDED.points
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


def _one(sql: str, params: dict | None = None) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return cursor.fetchone()


def _execute(sql: str, params: dict) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def ledger_rollup(*, now: datetime | None = None) -> int:
    """Add the ledger's new entries, lots and movements to the rolled-up
    tables, in one transaction. Answers how many entries it added (0 when
    a transaction older than the sample kept the marks where they were)."""
    with transaction.atomic():
        # One run at a time: a second waits, then finds nothing new.
        _one("SELECT pg_advisory_xact_lock(%(key)s)", {"key": LOCK_KEY})
        rollup = Rollup.objects.select_for_update().filter(pk=1).first() or Rollup(pk=1)
        sampled_at, entry_to, movement_to = _one(_SAMPLE_SQL)
        # A fresh view of the backends (one read earlier in this
        # transaction would be served again).
        _one("SELECT pg_stat_clear_snapshot()")
        (oldest,) = _one(_OLDEST_SQL)
        if oldest is not None and oldest <= sampled_at:
            logger.info("insights_rollup: a transaction from %s is open: marks kept", oldest)
            entry_to, movement_to = rollup.entry_id, rollup.movement_id
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
        rollup.entry_id = marks["entry_to"]
        rollup.movement_id = marks["movement_to"]
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
    result.rows = ledger_rollup(now=as_of)
    result.batches = 1
    if progress:
        progress(result.rows)
    return result
