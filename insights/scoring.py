"""The nightly `insights_refresh`: every profiled member's scores and the
market's fitted models.

Per market, as of a day (the market's date at `as_of`):

1. one set-based statement scores every member `profiled_members()` names
   (active, with the profiling consent) into a temporary table:
   - the purchases counted are those on or before the day that are not
     fully returned, at their net value (total less what came back);
     purchases of one day (market time) are one transaction;
   - recency (days since the last purchase), frequency (purchases, i.e.
     receipts, in the 12 months up to the day) and monetary value (their
     net spend), each scored 1 to 5 by quintile of rank within the market
     among the members who purchased (5 best): score = 1 + floor(5 x
     (rank - 1) / n) with the rank in ascending order of merit as `rank()`
     gives it (1 + how many have less: counted per distinct value, not by
     sorting the members), so members tied on a value share the lower
     score;
   - the segment and action of the contract's table, with FM the mean of
     the F and M scores rounded half up;
   - the BG/NBD inputs in weeks: x (transaction days after the first),
     t_x and T (first to last transaction day, first day to the day, / 7),
     and the mean net value of the repeat transactions;
   the `MemberScore` rows of members no longer profiled (consent
   withdrawn, suspended, erased) are deleted;
2. BG/NBD is fitted on the members' (x, t_x, T) grouped to their distinct
   values (the weights), Gamma-Gamma on (x, mean repeat value) of the
   members with x > 0 and a positive mean (`insights.clv`);
3. each distinct input's p_alive, expected transactions in 90 days and in
   52 weeks and expected spend (the model's mean p gamma / (q - 1) where
   x = 0) are computed once and copied into temporary tables (COPY);
   each member's `MemberScore` is then written once, its scores with the
   predictions of its inputs (joined on them) and clv_12m = expected
   transactions in 52 weeks x expected spend: one UPDATE of the rows that
   exist (HOT, on the table's half-free pages), one INSERT of the others;
4. the fitted models are stored as a `FittedModel` of the market and day,
   with the segments' summary the segments report answers (one row read).

Run twice for the same day, it writes the same rows again: idempotent.
"""

from __future__ import annotations

import logging
import struct
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from celery.schedules import crontab
from django.db import connection, transaction

from club.dates import local_date
from club.models import Market
from core.jobs import JobOptionError, JobResult, Progress, job, set_based
from insights import clv
from insights.models import FittedModel
from insights.selectors import segments_summary
from members.models import Member
from members.selectors import profiled_members

logger = logging.getLogger(__name__)

WEEKS_90_DAYS = 90 / 7
WEEKS_12_MONTHS = 52.0
# A market with less than this share of the club's members has its
# purchases picked by member before they are aggregated (_SCORE_SQL).
PICK_PURCHASES_BELOW = 0.5
WORK_MEM = "64MB"  # per sort or hash of the refresh's statements
LOCK_KEY = 0x1A51  # the advisory lock's first key: insights_refresh (the second: the market)

# `profiled` NOT MATERIALIZED: a materialized CTE hides the members'
# statistics (200 rows guessed for a million), and the plan then walks the
# purchases' member index a million times instead of scanning them once.
# The purchases meet the profiled members once aggregated per member (a
# probe per buyer); a market with a small share of the club's members
# has its purchases picked first ({purchases_of}: a hash probe per
# purchase, which costs more than the aggregation saved when the market
# holds most of the purchases: 10,000,000 probes were a third of the
# statement at 1,000,000 members). `buyers` MATERIALIZED: aggregated once,
# never the inner side of a nested loop run per member (what a plan
# without statistics chose).
# Each score's rank is rank()'s, 1 + how many buyers have less, from the
# buyers counted per distinct value (a few hundred days, a few receipt
# counts) and summed up to it: three sorts of a million rows saved, and
# per_member materialized once for the three counts and the scores.
_SCORE_SQL = """
CREATE TEMP TABLE insights_scored ON COMMIT DROP AS
WITH profiled AS NOT MATERIALIZED ({profiled}),
days AS (
    SELECT p.member_id, (p.occurred_at AT TIME ZONE %(tz)s)::date AS day,
           SUM(p.total - p.returned_amount) AS value, COUNT(*) AS receipts
    FROM loyalty_purchase p
    WHERE {purchases_of} p.occurred_at < %(end)s
      AND NOT (p.total > 0 AND p.returned_amount >= p.total)
    GROUP BY 1, 2
),
buyers AS MATERIALIZED (
    SELECT member_id, MIN(day) AS first_day, MAX(day) AS last_day, COUNT(*) - 1 AS x,
           SUM(value) - (ARRAY_AGG(value ORDER BY day))[1] AS repeat_value,
           COALESCE(SUM(receipts) FILTER (WHERE day > %(year_ago)s), 0) AS frequency,
           COALESCE(SUM(value) FILTER (WHERE day > %(year_ago)s), 0) AS monetary
    FROM days GROUP BY member_id
),
per_member AS MATERIALIZED (
    SELECT * FROM buyers WHERE member_id IN (SELECT id FROM profiled)
),
recency_ranks AS (
    SELECT last_day, SUM(COUNT(*)) OVER (ORDER BY last_day) - COUNT(*) AS below,
           SUM(COUNT(*)) OVER () AS buyers
    FROM per_member GROUP BY last_day
),
frequency_ranks AS (
    SELECT frequency, SUM(COUNT(*)) OVER (ORDER BY frequency) - COUNT(*) AS below
    FROM per_member GROUP BY frequency
),
monetary_ranks AS (
    SELECT monetary, SUM(COUNT(*)) OVER (ORDER BY monetary) - COUNT(*) AS below
    FROM per_member GROUP BY monetary
),
scored AS (
    SELECT pm.*,
           LEAST(5, 1 + FLOOR(5.0 * rr.below / rr.buyers))::int AS r,
           LEAST(5, 1 + FLOOR(5.0 * fr.below / rr.buyers))::int AS f,
           LEAST(5, 1 + FLOOR(5.0 * mr.below / rr.buyers))::int AS m
    FROM per_member pm
    JOIN recency_ranks rr ON rr.last_day = pm.last_day
    JOIN frequency_ranks fr ON fr.frequency = pm.frequency
    JOIN monetary_ranks mr ON mr.monetary = pm.monetary
),
segmented AS (
    SELECT s.*, CASE
        WHEN r >= 4 AND fm >= 4 THEN 'champions'
        WHEN r >= 3 AND fm >= 3 THEN 'loyal'
        WHEN r <= 2 AND fm >= 4 THEN 'cant_lose'
        WHEN r >= 3 AND fm = 2 THEN 'potential'
        WHEN r >= 4 AND fm = 1 THEN 'new'
        WHEN r <= 2 AND fm = 3 THEN 'at_risk'
        WHEN r IN (2, 3) THEN 'hibernating'
        ELSE 'lost' END AS segment
    FROM (SELECT scored.*, (f + m + 1) / 2 AS fm FROM scored) s
)
SELECT pr.id AS member_id, %(as_of)s - s.last_day AS recency_days,
       COALESCE(s.frequency, 0) AS frequency_12m, COALESCE(s.monetary, 0) AS monetary_12m,
       s.r, s.f, s.m, s.segment,
       CASE WHEN s.segment IN ('champions', 'loyal', 'cant_lose') THEN 'keep'
            WHEN s.segment IN ('potential', 'new', 'at_risk') THEN 'develop'
            WHEN s.segment IS NOT NULL THEN 'let_go' END AS action,
       s.x::int AS x, ((s.last_day - s.first_day) / 7.0)::float8 AS t_x,
       ((%(as_of)s - s.first_day) / 7.0)::float8 AS t_cal,
       (CASE WHEN s.x > 0 THEN ROUND(s.repeat_value / s.x, 2) END)::numeric(14, 2)
           AS mean_repeat_value
FROM profiled pr LEFT JOIN segmented s ON s.member_id = pr.id
"""

# Each scored member's scores with its predictions: those of its (x, t_x,
# T) and, with repeat transactions, of its (x, mean); the others the spend
# model's mean at once. Equalities only, so the joins hash (IS NOT
# DISTINCT FROM would not).
_PREDICTED_SQL = """
SELECT v.*, ROUND(v.spend::numeric, 2) AS expected_spend,
       ROUND((v.e52 * v.spend)::numeric, 2) AS clv_12m
FROM (SELECT s.*, c.p_alive, c.e90, c.e52,
             CASE WHEN s.x = 0 THEN %(first_only_spend)s::float8 ELSE sp.spend END AS spend
      FROM insights_scored s
      LEFT JOIN insights_churn_inputs c ON c.x = s.x AND c.t_x = s.t_x AND c.t_cal = s.t_cal
      LEFT JOIN insights_spend_inputs sp
        ON s.x > 0 AND sp.x = s.x AND sp.mean::numeric(14, 2) = s.mean_repeat_value) v
"""

# The members' rows that exist are updated in place, joined by hash: no
# index probe nor row lock per member (as ON CONFLICT takes), and with
# neither of its indexed columns changed (member, market and segment for
# most members night to night) each new row version is a HOT update on
# its own page (the table's fillfactor leaves the room, migration 0007):
# no index entry written.
_UPDATE_SQL = f"""
UPDATE insights_memberscore ms SET
    market_id = %(market)s, as_of = %(as_of)s,
    recency_days = v.recency_days, frequency_12m = v.frequency_12m,
    monetary_12m = v.monetary_12m, r = v.r, f = v.f, m = v.m,
    segment = v.segment, action = v.action, x = v.x, t_x = v.t_x, t_cal = v.t_cal,
    mean_repeat_value = v.mean_repeat_value, p_alive = v.p_alive,
    expected_purchases_90d = v.e90, expected_purchases_52w = v.e52,
    expected_spend = v.expected_spend, clv_12m = v.clv_12m
FROM ({_PREDICTED_SQL}) v
WHERE ms.member_id = v.member_id
"""

# The members without a row yet (all of them at a club's first refresh).
# ON CONFLICT only for a row another market's refresh wrote meanwhile (a
# member who moved market): its insert waits for that one, then updates.
_INSERT_SQL = f"""
INSERT INTO insights_memberscore (
    member_id, market_id, as_of, recency_days, frequency_12m, monetary_12m, r, f, m,
    segment, action, x, t_x, t_cal, mean_repeat_value, p_alive, expected_purchases_90d,
    expected_purchases_52w, expected_spend, clv_12m)
SELECT v.member_id, %(market)s, %(as_of)s, v.recency_days, v.frequency_12m, v.monetary_12m,
       v.r, v.f, v.m, v.segment, v.action, v.x, v.t_x, v.t_cal, v.mean_repeat_value,
       v.p_alive, v.e90, v.e52, v.expected_spend, v.clv_12m
FROM ({_PREDICTED_SQL}) v
WHERE NOT EXISTS (SELECT 1 FROM insights_memberscore ms WHERE ms.member_id = v.member_id)
ON CONFLICT (member_id) DO UPDATE SET
    market_id = EXCLUDED.market_id, as_of = EXCLUDED.as_of,
    recency_days = EXCLUDED.recency_days, frequency_12m = EXCLUDED.frequency_12m,
    monetary_12m = EXCLUDED.monetary_12m, r = EXCLUDED.r, f = EXCLUDED.f, m = EXCLUDED.m,
    segment = EXCLUDED.segment, action = EXCLUDED.action, x = EXCLUDED.x,
    t_x = EXCLUDED.t_x, t_cal = EXCLUDED.t_cal, mean_repeat_value = EXCLUDED.mean_repeat_value,
    p_alive = EXCLUDED.p_alive, expected_purchases_90d = EXCLUDED.expected_purchases_90d,
    expected_purchases_52w = EXCLUDED.expected_purchases_52w,
    expected_spend = EXCLUDED.expected_spend, clv_12m = EXCLUDED.clv_12m
"""

# The scores of members who are no longer profiled (or moved market) go.
# NOT EXISTS, an anti-join: NOT IN over a million ids that do not fit in
# work_mem would rescan the list for every row.
_UNPROFILED_SQL = """
DELETE FROM insights_memberscore s
WHERE s.market_id = %(market)s
  AND NOT EXISTS (SELECT 1 FROM ({profiled}) p WHERE p.id = s.member_id)
"""

# The scores, then the predictions of each distinct input (copied in):
# temporary tables, dropped first as inside an outer transaction (a
# test's) ON COMMIT comes late.
_TEMP_TABLES_SQL = (
    "DROP TABLE IF EXISTS pg_temp.insights_scored, pg_temp.insights_churn_inputs, "
    "pg_temp.insights_spend_inputs",
    "CREATE TEMP TABLE insights_churn_inputs (x int, t_x float8, t_cal float8, "
    "p_alive float8, e90 float8, e52 float8) ON COMMIT DROP",
    "CREATE TEMP TABLE insights_spend_inputs (x int, mean float8, spend float8) ON COMMIT DROP",
)


def _profiled_sql(market: Market) -> tuple[str, list[Any]]:
    """The ids of the market's profiled members, as SQL (the one definition:
    members.selectors.profiled_members)."""
    query = profiled_members().filter(market_id=market.pk).values("id").query
    sql, params = query.sql_with_params()
    return sql, list(params)


def _named(sql: str, params: list[Any], named: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Positional parameters of an ORM query inlined into a statement of
    named ones (%s -> %(p0)s, ...)."""
    names = {}
    for i, value in enumerate(params):
        names[f"p{i}"] = value
    parts = sql.split("%s")
    inlined = parts[0] + "".join(f"%(p{i})s{part}" for i, part in enumerate(parts[1:]))
    return inlined, {**named, **names}


# PostgreSQL's binary COPY: a header, then per row the number of fields
# and each field's size and bytes (big-endian), then -1. Rows of fixed-size
# fields without nulls are a numpy record array: no Python object per value.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)


def _copy_rows(fields: dict[str, str]) -> np.dtype:
    """The record of one binary COPY row of these fields (name: numpy type)."""
    layout = [("fields", ">i2")]
    for name, kind in fields.items():
        layout += [(f"{name}_size", ">i4"), (name, kind)]
    return np.dtype(layout)


def _columns(sql: str, width: int) -> np.ndarray:
    """The rows of `sql`, `width` float8 columns never null, as a (width,
    rows) float array, read through a binary COPY."""
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)") as copy:
            # A chunk per row: appended as they come (a list of them first
            # held 300 MB for 557,000 rows).
            data = bytearray()
            for chunk in copy:
                data += chunk
    if not data.startswith(_COPY_HEADER) or not data.endswith(_COPY_TRAILER):
        raise ValueError("insights_refresh: not a binary COPY of the inputs")
    dtype = _copy_rows({f"c{i}": ">f8" for i in range(width)})
    body = memoryview(data)[len(_COPY_HEADER) : -len(_COPY_TRAILER)]  # no copy
    rows = np.frombuffer(body[: len(body) - len(body) % dtype.itemsize], dtype=dtype)
    sizes = [rows[f"c{i}_size"] for i in range(width)]
    if (
        len(body) % dtype.itemsize
        or np.any(rows["fields"] != width)
        or any(np.any(size != 8) for size in sizes)
    ):
        raise ValueError("insights_refresh: an input is null or not a float8")
    return np.array([rows[f"c{i}"] for i in range(width)], dtype=float).reshape(width, len(rows))


def _execute(sql: str, params: dict[str, Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _copy_in(table: str, columns: dict[str, np.ndarray]) -> None:
    """The arrays as the rows of a temporary table, through a binary COPY
    (each double exactly): x as an integer, the others as floats, a
    non-finite value as null. The rows with one (a degenerate fit) go in
    one by one: a null is no fixed-size field."""
    names = list(columns)
    kinds = {name: ">i4" if name == "x" else ">f8" for name in names}
    finite = np.logical_and.reduce([np.isfinite(values) for values in columns.values()])
    rows = np.empty(int(finite.sum()), dtype=_copy_rows(kinds))
    rows["fields"] = len(names)
    for name, values in columns.items():
        rows[f"{name}_size"] = np.dtype(kinds[name]).itemsize
        rows[name] = values[finite]
    with connection.cursor() as cursor:
        into = f"COPY {table} ({', '.join(names)}) FROM STDIN"
        with cursor.cursor.copy(f"{into} (FORMAT binary)") as copy:
            copy.write(_COPY_HEADER + rows.tobytes() + _COPY_TRAILER)
        if finite.all():
            return
        with cursor.cursor.copy(into) as copy:
            for row in zip(*(columns[name][~finite] for name in names), strict=True):
                copy.write_row(
                    [
                        int(v) if name == "x" else float(v) if np.isfinite(v) else None
                        for name, v in zip(names, row, strict=True)
                    ]
                )


def _fit_purchases(market: Market) -> tuple[clv.BgNbd | None, int]:
    x, t_x, t_cal, weights = _columns(
        "SELECT x::float8, t_x, t_cal, COUNT(*)::float8 FROM insights_scored "
        "WHERE x IS NOT NULL GROUP BY x, t_x, t_cal",
        4,
    )
    if not len(x):
        return None, 0
    members = int(weights.sum())
    try:
        model = clv.bgnbd_fit(x, t_x, t_cal, weights)
    except (ValueError, FloatingPointError) as exc:
        logger.warning("insights_refresh: no BG/NBD fit for %s: %s", market.code, exc)
        return None, members
    # A degenerate fit (nobody repeated: a -> 1) predicts no finite number:
    # those members' predictions stay null rather than infinite.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p_alive = clv.bgnbd_p_alive(model, x, t_x, t_cal)
        e90 = clv.bgnbd_expected_purchases(model, WEEKS_90_DAYS, x, t_x, t_cal)
        e52 = clv.bgnbd_expected_purchases(model, WEEKS_12_MONTHS, x, t_x, t_cal)
    _copy_in(
        "insights_churn_inputs",
        {"x": x, "t_x": t_x, "t_cal": t_cal, "p_alive": p_alive, "e90": e90, "e52": e52},
    )
    return model, members


def _fit_spend(market: Market) -> tuple[clv.GammaGamma | None, float | None]:
    """The Gamma-Gamma model and the spend of the members without a repeat
    transaction (its mean; None when not finite)."""
    # Every distinct (x, mean) of the members with repeat transactions: the
    # fit takes those with a positive mean, the predictions all of them.
    x, mean, weights = _columns(
        "SELECT x::float8, mean_repeat_value::float8, COUNT(*)::float8 FROM insights_scored "
        "WHERE x > 0 GROUP BY x, mean_repeat_value",
        3,
    )
    fitted = mean > 0
    if not fitted.any():
        return None, None
    try:
        model = clv.gamma_gamma_fit(x[fitted], mean[fitted], weights[fitted])
        population = clv.gamma_gamma_mean(model)
    except (ValueError, FloatingPointError) as exc:
        logger.warning("insights_refresh: no Gamma-Gamma fit for %s: %s", market.code, exc)
        return None, None
    spend = clv.gamma_gamma_expected_spend(model, x, np.maximum(mean, 0.0))
    _copy_in("insights_spend_inputs", {"x": x, "mean": mean, "spend": spend})
    return model, float(population) if np.isfinite(population) else None


def market_refresh(*, market: Market, day: date) -> int:
    """Score the market's profiled members and fit its models as of `day`,
    in one transaction. Answers how many members were scored."""
    profiled, profiled_params = _profiled_sql(market)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time())
    # 12 months back (29 February's year-ago is the 28th).
    year_ago = day.replace(year=day.year - 1, day=min(day.day, 28 if day.month == 2 else 31))
    phases: dict[str, float] = {}
    clock = time.monotonic()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        phases[name] = now - clock
        clock = now

    with transaction.atomic():
        # One refresh of a market at a time: a second (beat and a command
        # by hand) waits, then writes the same rows again.
        _execute(
            "SELECT pg_advisory_xact_lock(%(key)s, %(market)s)",
            {"key": LOCK_KEY, "market": market.pk},
        )
        # The statements' sorts and hashes over a million members in memory
        # rather than in temporary files (this transaction only). No nested
        # loop: every join here is of whole sets, and a table planned as
        # empty (the scores' before a first refresh) made the insert's
        # NOT EXISTS rescan it per member as it grew.
        _execute(f"SET LOCAL work_mem = '{WORK_MEM}'", {})
        _execute("SET LOCAL enable_nestloop = off", {})
        market_members = Member.objects.filter(market=market).count()
        pick = market_members < PICK_PURCHASES_BELOW * Member.objects.count()
        purchases_of = "p.member_id IN (SELECT id FROM profiled) AND" if pick else ""
        sql, params = _named(
            _SCORE_SQL.format(profiled=profiled, purchases_of=purchases_of),
            profiled_params,
            {
                "market": market.pk,
                "as_of": day,
                "tz": market.time_zone,
                # The end of the day in the market's time zone.
                "end": end.replace(tzinfo=ZoneInfo(market.time_zone)),
                "year_ago": year_ago,
            },
        )
        for statement in _TEMP_TABLES_SQL:
            _execute(statement, {})
        scored = _execute(sql, params)
        # The temporary tables' statistics (autovacuum never sees them): the
        # fits' GROUP BYs and the writes' joins are planned on their sizes.
        _execute("ANALYZE insights_scored", {})
        phase("score")
        sql, params = _named(
            _UNPROFILED_SQL.format(profiled=profiled), profiled_params, {"market": market.pk}
        )
        _execute(sql, params)
        phase("unprofiled")
        purchase_model, members = _fit_purchases(market)
        spend_model, first_only_spend = None, None
        if purchase_model is not None:
            spend_model, first_only_spend = _fit_spend(market)
        _execute("ANALYZE insights_churn_inputs, insights_spend_inputs", {})
        phase("fit")
        written = {"market": market.pk, "as_of": day, "first_only_spend": first_only_spend}
        _execute(_UPDATE_SQL, written)
        phase("update")
        _execute(_INSERT_SQL, written)
        phase("insert")
        FittedModel.objects.update_or_create(
            market=market,
            as_of=day,
            defaults={
                "members": members,
                "purchase_model": _bgnbd_view(purchase_model),
                "spend_model": _gamma_gamma_view(spend_model),
                "segments": segments_summary(market=market),
            },
        )
        phase("models")
    phase("commit")
    logger.info(
        "insights_refresh %s phases: %s",
        market.code,
        ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items()),
    )
    return scored


def _bgnbd_view(model: clv.BgNbd | None) -> dict[str, Any] | None:
    if model is None:
        return None
    return {
        "name": "bg_nbd",
        "r": model.r,
        "alpha": model.alpha,
        "a": model.a,
        "b": model.b,
        "log_likelihood": model.log_likelihood,
    }


def _gamma_gamma_view(model: clv.GammaGamma | None) -> dict[str, Any] | None:
    if model is None:
        return None
    return {
        "name": "gamma_gamma",
        "p": model.p,
        "q": model.q,
        "gamma": model.gamma,
        "members": model.members,
        "log_likelihood": model.log_likelihood,
    }


@job(title="insights: refresh", schedule=crontab(minute="10", hour="3"), unit="members")
def insights_refresh(
    *, as_of: datetime, market: str | None = None, progress: Progress | None = None
) -> JobResult:
    """Score every profiled member (recency, frequency, monetary value,
    segment, p_alive, expected purchases and spend, 12-month value) and fit
    the purchase and spend models, per market as of its date at `as_of`;
    `market` limits it to one market's code."""
    result = JobResult("insights_refresh")
    if not set_based():
        # Its statements are PostgreSQL's (make run's SQLite has no AT TIME
        # ZONE nor unnest): nothing is scored there.
        logger.warning("insights_refresh needs PostgreSQL: nothing scored")
        return result
    markets = Market.objects.order_by("code")
    if market:
        markets = markets.filter(code=market.upper())
        if not markets.exists():
            raise JobOptionError(f"no market {market}")
    for each in markets:
        done = market_refresh(market=each, day=local_date(each, as_of))
        result.rows += done
        result.batches += 1
        if progress:
            progress(done)
    return result
