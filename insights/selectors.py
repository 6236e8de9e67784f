"""Reads of what the club learns: NPS, cohorts, segments, models, liability.

Every report returns a dict shaped exactly as the contract's JSON answer
(`/api/v1/insights/...`), JSON-ready (dates and months as strings, money as
decimal strings), so the API and the admin's dashboard render the same thing.
NPS, cohorts and liability are computed from the data as it is when asked
(aggregated in SQL; the liability from `insights_rollup`'s rolled-up sums
plus what came after them, read live); segments, the models and each member's scores are what
the last `insights_refresh` stored.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import psycopg
from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum, Window
from django.db.models.functions import RowNumber, TruncMonth

from club.dates import today_for
from club.models import Market, Store
from club.selectors import market_recent
from core.actors import Actor
from core.errors import NotFound, ValidationFailed
from core.recent import Recent
from insights.models import (
    LedgerDay,
    LedgerMonth,
    LotDay,
    MemberScore,
    NpsResponse,
)
from insights.rollups import cohort_changes
from loyalty.models import LedgerEntry, Lot, LotMovement, Purchase, Redemption
from members.models import Member

NPS_GROUPS = ("touchpoint", "store", "tier", "month")
T = TypeVar("T")


def member_segment(*, member_id: int) -> str | None:
    """The member's value segment from the last refresh, or None (never
    scored, never purchased, or no consent to profiling)."""
    return MemberScore.objects.filter(member_id=member_id).values_list("segment", flat=True).first()


def report_market(*, actor: Actor, code: str | None) -> Market:
    """The market a report is about: the one named (404 when it does not
    exist or the client does not see it), or the client's only market.
    Read through the process's few seconds' memory of markets
    (club.selectors.market_recent): the client's view is checked each call."""
    if code:
        market = market_recent(code=code.upper()[:2])
        if market is None or not actor.sees_market(market.pk):
            raise NotFound(f"No market {code}.")
        return market
    if actor.market_ids is not None and len(actor.market_ids) == 1:
        market = market_recent(market_id=next(iter(actor.market_ids)))
        if market is None:
            raise NotFound("The client's market no longer exists.")
        return market
    raise ValidationFailed(
        "Name the market: this client sees several.", errors={"market": ["This field is required."]}
    )


# --- small figures ---------------------------------------------------------------


def _round(value: float, places: int) -> float:
    """Half away from zero, as people round (not the float's banker's rounding)."""
    quantum = Decimal(1).scaleb(-places)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def _month(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _add_months(day: dt.date, months: int) -> dt.date:
    """The 1st of the month `months` after `day`'s."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _months_between(first: dt.date, later: dt.date) -> int:
    return (later.year - first.year) * 12 + later.month - first.month


def _midnight(market: Market, day: dt.date) -> dt.datetime:
    """The start of `day` in the market's time zone."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=ZoneInfo(market.time_zone))


def _as_date(value: Any) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


# --- NPS -----------------------------------------------------------------------------


def nps_figures(promoters: int, passives: int, detractors: int) -> dict[str, Any]:
    """The contract's figures of a set of answers: counts, NPS and the
    adjusted Wald interval (0.75 added to promoters and to detractors, 3 to
    the responses); both null without answers."""
    responses = promoters + passives + detractors
    out: dict[str, Any] = {
        "responses": responses,
        "promoters": promoters,
        "passives": passives,
        "detractors": detractors,
        "nps": None,
        "ci95": None,
    }
    if responses:
        out["nps"] = _round(100 * (promoters - detractors) / responses, 1)
        n = responses + 3
        p, d = (promoters + 0.75) / n, (detractors + 0.75) / n
        score = p - d
        half = 1.96 * math.sqrt((p + d - score**2) / n)
        out["ci95"] = [_round(100 * (score - half), 1), _round(100 * (score + half), 1)]
    return out


def _nps_counts(rows: Any) -> tuple[int, int, int]:
    return rows["promoters"] or 0, rows["passives"] or 0, rows["detractors"] or 0


_CATEGORY_COUNTS = {
    "promoters": Count("id", filter=Q(score__gte=9)),
    "passives": Count("id", filter=Q(score__gte=7, score__lte=8)),
    "detractors": Count("id", filter=Q(score__lte=6)),
}


def _nps_pieces(first: dt.date, last: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    """[first, last] cut into at most three pieces, in order: the days before
    the first whole month, the whole months (span "month": the 1st of the
    first and of the last), the days after the last whole month."""
    if first > last:
        return []
    head, tail = first.replace(day=1), last.replace(day=1)
    last_of_tail = _add_months(tail, 1) - dt.timedelta(days=1)
    if head == tail and not (first == head and last == last_of_tail):
        return [("day", first, last)]
    pieces = []
    months_from, months_to = head, tail
    if first != head:
        pieces.append(("day", first, _add_months(head, 1) - dt.timedelta(days=1)))
        months_from = _add_months(head, 1)
    if last != last_of_tail:
        months_to = _add_months(tail, -1)
    if months_from <= months_to:
        pieces.append(("month", months_from, months_to))
    if last != last_of_tail:
        pieces.append(("day", tail, last))
    return pieces


# One part of the report's statement: the answers of some cells of a table
# (the superseded ones taken away), labelled with the part's tag (0: the
# period's totals, 1: its groups) and, for the trend by month, the day.
_NPS_PART = (
    "SELECT {tag} AS tag, {day} AS day, group_key, category, {sign}answers AS answers "
    "FROM insights_{table} WHERE market_id = %s AND group_by = %s AND span = %s "
    "AND day BETWEEN %s AND %s{next_day}"
)


def _nps_period_parts(
    tag: int, group_by: str, first: dt.date, last: dt.date, *, by_day: bool = False
) -> list[tuple[str, list[Any]]]:
    """The parts that count the period [first, last]: its answers less those
    superseded within it. With `by_day`, each month of the period on its own
    (the trend: the period's pieces are each within a month, or whole
    months; an answer superseded in its own month is in "mm" with next_day
    equal to day)."""
    day = "day" if by_day else "CAST(NULL AS DATE)"
    pieces = _nps_pieces(first, last)
    parts: list[tuple[str, list[Any]]] = []
    for span, start, end in pieces:
        parts.append(
            (
                _NPS_PART.format(tag=tag, day=day, sign="", table="npsday", next_day=""),
                [group_by, span, start, end],
            )
        )
    for i, (span, start, end) in enumerate(pieces):
        # An answer's next one is on its day or later: in its piece or a later one.
        thens = [pieces[i]] if by_day else pieces[i:]
        for later_span, later_start, later_end in thens:
            cells = span[0] + later_span[0]
            if by_day and cells == "mm":
                next_day, extra = " AND next_day = day", []
            else:
                next_day, extra = " AND next_day BETWEEN %s AND %s", [later_start, later_end]
            parts.append(
                (
                    _NPS_PART.format(
                        tag=tag, day=day, sign="-", table="npssuperseded", next_day=next_day
                    ),
                    [group_by, cells, start, end, *extra],
                )
            )
    return parts


def _nps_rolled_up(
    market: Market, parts: list[tuple[str, list[Any]]]
) -> list[tuple[int, dt.date | None, str, str, int]]:
    """(tag, day, group_key, category, answers) of the parts, in one
    statement: one snapshot, so a write that commits meanwhile counts in all
    of them or in none."""
    if not parts:  # an empty period
        return []
    sql = (
        "SELECT tag, day, group_key, category, SUM(answers) FROM ("
        + " UNION ALL ".join(part for part, _ in parts)
        + ") parts GROUP BY tag, day, group_key, category"
    )
    params = [value for _, part_params in parts for value in (market.pk, *part_params)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            (tag, dt.date.fromisoformat(day) if isinstance(day, str) else day, key, cat, int(n))
            for tag, day, key, cat, n in cursor.fetchall()
        ]


_CATEGORIES = {"promoter": 0, "passive": 1, "detractor": 2}


def _nps_tally(rows: Any) -> dict[Any, list[int]]:
    """[promoters, passives, detractors] per label from (label, category,
    answers) rows."""
    tally: dict[Any, list[int]] = {}
    for label, category, answers in rows:
        tally.setdefault(label, [0, 0, 0])[_CATEGORIES[category]] += answers
    return tally


def _nps_tier_groups(market: Market, date_from: dt.date, date_to: dt.date) -> dict[Any, list[int]]:
    """[promoters, passives, detractors] per tier code (the member's tier
    now, which no rollup can know), ranking the period's answers live: each
    member's latest (occurred_at, then id) counts."""
    answers = NpsResponse.objects.filter(
        market=market,
        occurred_at__gte=_midnight(market, date_from),
        occurred_at__lt=_midnight(market, date_to + dt.timedelta(days=1)),
    )
    ranked = answers.annotate(
        rank=Window(
            RowNumber(),
            partition_by=[F("member_id")],
            order_by=[F("occurred_at").desc(), F("id").desc()],
        )
    ).filter(rank=1)
    rows = (
        NpsResponse.objects.filter(id__in=ranked.values("id"))
        .values("member__tier__code")
        .annotate(**_CATEGORY_COUNTS)
        .order_by()
    )
    return {
        row["member__tier__code"]: list(_nps_counts(row)) for row in rows if any(_nps_counts(row))
    }


def nps_report(
    *, market: Market, date_from: dt.date, date_to: dt.date, group_by: str | None = None
) -> dict:
    """Net Promoter Score of the market's answers occurred from `date_from` to
    `date_to` (both included, market time), each member counted once with
    their latest answer. `group_by` is None or one of touchpoint, store, tier,
    month; then `groups` lists the same figures per key: the touchpoint, the
    store code (null: no store), the member's tier code now, or the month
    `YYYY-MM`. By month each member counts once per month, with their latest
    answer in it (a trend); the other groups split the period's answers.
    Read from the rollups the answers' writes keep (insights/services.py):
    exact as the data stand when asked; by tier the answers are ranked live.
    The answer of `GET /api/v1/insights/nps`: {"market", "from", "to",
    "responses", "promoters", "passives", "detractors", "nps", "ci95",
    ["groups"]}."""
    if group_by is not None and group_by not in NPS_GROUPS:
        raise ValueError(f"group_by: {group_by!r}")
    groups: dict[Any, list[int]] | None = None
    if group_by == "tier":
        groups = _nps_tier_groups(market, date_from, date_to)
        total = [sum(counts[i] for counts in groups.values()) for i in range(3)]
    elif group_by in ("touchpoint", "store"):
        # Each answer has one touchpoint and one store (or none): the groups
        # add up to the period.
        rows = _nps_rolled_up(market, _nps_period_parts(1, group_by, date_from, date_to))
        groups = _nps_tally((key, category, n) for _, _, key, category, n in rows)
        total = [sum(counts[i] for counts in groups.values()) for i in range(3)]
    else:
        parts = _nps_period_parts(0, "", date_from, date_to)
        if group_by == "month":
            parts += _nps_period_parts(1, "", date_from, date_to, by_day=True)
        rows = _nps_rolled_up(market, parts)
        total = _nps_tally((tag, c, n) for tag, _, _, c, n in rows if tag == 0).get(0, [0, 0, 0])
        if group_by == "month":
            groups = _nps_tally(
                (_month(day), category, n) for tag, day, _, category, n in rows if tag == 1
            )
    out: dict[str, Any] = {
        "market": market.code,
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        **nps_figures(*total),
    }
    if groups is not None:
        labels = {key: key for key in groups}
        if group_by == "store":
            codes = dict(
                Store.objects.filter(pk__in=[int(key) for key in groups if key]).values_list(
                    "pk", "code"
                )
            )
            labels = {key: codes[int(key)] if key else None for key in groups}
        present = [key for key, counts in groups.items() if any(counts)]
        present.sort(key=lambda key: (labels[key] is None, labels[key] or ""))
        out["groups"] = [{"key": labels[key], **nps_figures(*groups[key])} for key in present]
    return out


def nps_latest(*, member: Member) -> dict[str, Any] | None:
    """The member's latest NPS answer, or None."""
    row = (
        NpsResponse.objects.filter(member_id=member.pk)
        .order_by("-occurred_at", "-id")
        .values("score", "occurred_at")
        .first()
    )
    if row is None:
        return None
    return {
        "score": row["score"],
        "category": NpsResponse.category_of(row["score"]),
        "answered_at": row["occurred_at"].isoformat(),
    }


# --- the rollup's marks -----------------------------------------------------------------


@dataclass(frozen=True)
class _Marks:
    """How far `insights_rollup` added up (insights.models.Rollup; 0 and
    None: not yet, every row is added live), and `version`: the marks as
    the database writes them (_MARKS_VERSION), to compare with the marks a
    later statement reads beside the sums."""

    entry_id: int = 0
    movement_id: int = 0
    member_id: int = 0
    purchases_before: dt.datetime | None = None
    version: str = ""


# The marks as one text, '' before the first rollup: a statement that reads
# rolled-up sums reads it beside them (in the same snapshot).
_MARKS_VERSION = (
    "COALESCE((SELECT CAST(entry_id AS TEXT) || ',' || CAST(movement_id AS TEXT) || ','"
    " || CAST(member_id AS TEXT) || ',' || COALESCE(CAST(purchases_before AS TEXT), '')"
    " FROM insights_rollup WHERE id = 1), '')"
)

_MARKS_SQL = (
    """
SELECT r.entry_id, r.movement_id, r.member_id, r.purchases_before, """
    + _MARKS_VERSION
    + """
FROM (SELECT 1 AS id) one LEFT JOIN insights_rollup r ON r.id = one.id
"""
)

# For the rest of a transaction (PostgreSQL): no JIT (small reads: compiling
# them would cost more than running them; DB_OPTIONS turns it off unless a
# deployment says otherwise), and a plan of its own for each statement, made
# with the marks' values: a generic plan guesses a third of a table above
# any mark. For the reads that take the marks as parameters (cohort_changes);
# the reports' own statements carry them in their text (_bound).
_REPORT_SETTINGS_SQL = "SELECT set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_custom_plan', true)"


def _marks() -> _Marks:
    """How far `insights_rollup` added the ledger up."""
    with connection.cursor() as cursor:
        cursor.execute(_MARKS_SQL)
        entry_id, movement_id, member_id, purchases_before, version = cursor.fetchone()
    if entry_id is None:
        return _Marks(version=version)
    if isinstance(purchases_before, str):  # SQLite's raw timestamps
        purchases_before = dt.datetime.fromisoformat(purchases_before)
    return _Marks(entry_id, movement_id, member_id, purchases_before, version)


# The marks this process last read with (insights_rollup moves them every
# quarter of an hour): a report reads with them, and the marks' version it
# reads beside its sums tells whether they still hold.
_last_marks: _Marks | None = None


def _with_marks(read: Callable[[_Marks], tuple[T, str]]) -> T:
    """`read(marks)`, which answers (its result, the marks' version read
    beside its rolled-up sums), so that the sums it read are as of those
    marks. The marks are this process's last (_last_marks); when a rollup
    has moved them since (the sums read with the old marks would count its
    rows twice), the version shows it: the marks are read and it reads
    again."""
    global _last_marks
    marks = _last_marks or _marks()
    for _ in range(10):
        result, version = read(marks)
        if version == marks.version:
            _last_marks = marks
            return result
        marks = _marks()
    raise RuntimeError("insights: the rollup kept moving under the report")


def _bound(sql: str, params: dict[str, Any]) -> str:
    """`sql` with its parameters written in as literals (psycopg's client-side
    binding), the marks among them: the text psycopg prepares (server-side
    binding) is then the same for every call of a market, day and marks,
    so Postgres plans it once per connection with the values themselves
    (its reads above the marks by their keys), not per call."""
    connection.ensure_connection()
    return psycopg.ClientCursor(connection.connection).mogrify(sql, params)


# --- cohorts ---------------------------------------------------------------------------


def _cohorts_orm(
    market: Market, start: dt.datetime, end: dt.datetime, current: dt.date
) -> tuple[dict[dt.date, int], dict[tuple[dt.date, dt.date], int]]:
    """(members per cohort, active members per (cohort, month)) straight
    from the members and purchases: SQLite's way (make run)."""
    zone = ZoneInfo(market.time_zone)
    enrolled = Member.objects.filter(market=market, enrolled_at__gte=start, enrolled_at__lt=end)
    sizes = {
        _as_date(row["cohort"]): row["members"]
        for row in enrolled.annotate(cohort=TruncMonth("enrolled_at", tzinfo=zone))
        .values("cohort")
        .annotate(members=Count("id"))
        .order_by()
    }
    active: dict[tuple[dt.date, dt.date], int] = {
        (_as_date(row["cohort"]), _as_date(row["month"])): row["active"]
        for row in Purchase.objects.filter(
            member__market=market,
            member__enrolled_at__gte=start,
            member__enrolled_at__lt=end,
            occurred_at__lt=_midnight(market, _add_months(current, 1)),
        )
        # Not fully returned: a purchase returned whole was no purchase.
        .exclude(total__gt=0, returned_amount__gte=F("total"))
        .annotate(
            cohort=TruncMonth("member__enrolled_at", tzinfo=zone),
            month=TruncMonth("occurred_at", tzinfo=zone),
        )
        .values("cohort", "month")
        .annotate(active=Count("member_id", distinct=True))
        .order_by()
    }
    return sizes, active


def _cohorts_rolled(
    market: Market, start: dt.datetime, end: dt.datetime
) -> tuple[dict[dt.date, int], dict[tuple[dt.date, dt.date], int]]:
    """The same from `insights_rollup`'s counts plus, live, the changes of
    the members with news since its marks (insights.rollups)."""
    return _with_marks(lambda marks: _cohorts_since(market, start, end, marks))


# The cohorts' rolled-up counts and whether any of their members has news
# since the marks (a purchase or a return created since the moment, or a
# member above the member mark), in one statement: without news the live
# part (cohort_changes) has nothing to add and is not run. The news are
# found by the B-tree indexes on the purchases' and returns' created_at
# (insights 0008): one probe when there are none.
_COHORTS_ROLLED_SQL = (
    """
SELECT 'size', cohort, NULL::date, members FROM insights_cohortsize
WHERE market_id = %(market)s AND cohort >= %(first)s AND cohort < %(last)s
UNION ALL
SELECT 'active', cohort, month, active FROM insights_cohortmonth
WHERE market_id = %(market)s AND cohort >= %(first)s AND cohort < %(last)s
UNION ALL
SELECT """
    + _MARKS_VERSION
    + """, NULL, NULL, NULL
UNION ALL
SELECT 'news', NULL, NULL,
       (SELECT COUNT(*) FROM loyalty_purchase p JOIN members_member m ON m.id = p.member_id
        WHERE p.created_at >= %(moment)s AND {members})
       + (SELECT COUNT(*) FROM loyalty_return r
          JOIN loyalty_purchase p ON p.id = r.purchase_id
          JOIN members_member m ON m.id = p.member_id
          WHERE r.created_at >= %(moment)s AND {members})
       + (SELECT COUNT(*) FROM members_member m WHERE m.id > %(member)s AND {members})
WHERE %(moment)s IS NOT NULL
"""
)

# The report's members: the market's, enrolled in its cohorts.
_COHORT_MEMBERS = (
    "m.market_id = %(market)s AND m.enrolled_at >= %(start)s AND m.enrolled_at < %(end)s"
)


def _cohorts_since(
    market: Market, start: dt.datetime, end: dt.datetime, marks: _Marks
) -> tuple[tuple[dict[dt.date, int], dict[tuple[dt.date, dt.date], int]], str]:
    """((members per cohort, active members per (cohort, month)), the
    marks' version the rolled-up counts were read with)."""
    first, last = _as_date(start.date()), _as_date(end.date())
    params = {"market": market.pk, "start": start, "end": end}
    with connection.cursor() as cursor:
        cursor.execute(
            _bound(
                _COHORTS_ROLLED_SQL.format(members=_COHORT_MEMBERS),
                {
                    **params,
                    "first": first,
                    "last": last,
                    # None: no moment yet, nothing to count (all of it is news).
                    "moment": marks.purchases_before,
                    "member": marks.member_id,
                },
            )
        )
        rows = cursor.fetchall()
    sizes: dict[dt.date, int] = {}
    active: dict[tuple[dt.date, dt.date], int] = {}
    # Before the first rollup every count is live.
    news, version = int(marks.purchases_before is None), ""
    for part, cohort, month, count in rows:
        if part == "size":
            sizes[cohort] = count
        elif part == "active":
            active[(cohort, month)] = count
        elif part == "news":
            news = count
        else:  # the marks' version: what the rolled-up counts are as of
            version = part
    if news and version == marks.version:
        # Its statements take the marks as parameters: planned with them.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_REPORT_SETTINGS_SQL)
            new_sizes, changes = cohort_changes(
                moment_from=marks.purchases_before,
                member_from=marks.member_id,
                members=_COHORT_MEMBERS,
                params=params,
            )
        for _, cohort, count in new_sizes:
            sizes[cohort] = sizes.get(cohort, 0) + count
        for _, cohort, month, count in changes:
            active[(cohort, month)] = active.get((cohort, month), 0) + count
    return ({cohort: n for cohort, n in sizes.items() if n}, active), version


def retention_report(*, market: Market, month_from: dt.date, month_to: dt.date) -> dict:
    """Purchase retention by enrolment month, cohorts `month_from` to
    `month_to` (dates on the 1st of their month; market time). `active[k]`
    counts the cohort's members with a purchase not fully returned in the
    k-th month after the enrolment month (0: that month), up to the current
    month; `retention[k]` = active[k] / members, four decimals. Months
    without enrolments are left out. On PostgreSQL the counts are
    `insights_rollup`'s plus the changes since, live: exact whenever it
    last ran. The answer of `GET /api/v1/insights/retention`: {"market",
    "cohorts": [{"cohort", "members", "active", "retention"}]}."""
    current = today_for(market).replace(day=1)
    start = _midnight(market, month_from.replace(day=1))
    end = _midnight(market, _add_months(min(month_to, current), 1))
    if connection.vendor == "postgresql":
        sizes, active = _cohorts_rolled(market, start, end)
    else:
        sizes, active = _cohorts_orm(market, start, end, current)
    cohorts = []
    for cohort in sorted(sizes):
        members = sizes[cohort]
        counts = [
            active.get((cohort, _add_months(cohort, k)), 0)
            for k in range(_months_between(cohort, current) + 1)
        ]
        cohorts.append(
            {
                "cohort": _month(cohort),
                "members": members,
                "active": counts,
                "retention": [_round(count / members, 4) for count in counts],
            }
        )
    return {"market": market.code, "cohorts": cohorts}


# --- liability -------------------------------------------------------------------------

# The ledger's kinds as the report names them, in its order.
LIABILITY_KINDS = {
    "earned": LedgerEntry.Kind.EARN,
    "bonus": LedgerEntry.Kind.BONUS,
    "adjusted": LedgerEntry.Kind.ADJUST,
    "returned": LedgerEntry.Kind.RETURN,
    "redeemed": LedgerEntry.Kind.REDEEM,
    "redeem_cancelled": LedgerEntry.Kind.REDEEM_CANCEL,
    "expired": LedgerEntry.Kind.EXPIRE,
}

# Each lot of the market as it stood at a moment: its points and the
# movements made before then (a lot earned later is not there yet).
_LOTS_AT_SQL = """
SELECT l.expires_on, l.available_on,
       l.points + COALESCE((SELECT SUM(mv.points) FROM loyalty_lotmovement mv
                            WHERE mv.lot_id = l.id AND mv.created_at < %s), 0) AS remaining
FROM loyalty_lot l
JOIN loyalty_ledgerentry e ON e.id = l.entry_id
JOIN members_member m ON m.id = l.member_id
WHERE m.market_id = %s AND e.created_at < %s
"""


def _lots_at(market: Market, moment: dt.datetime, as_of: dt.date) -> tuple[int, dict[dt.date, int]]:
    """(pending points, remaining points by expiry day after as_of) of the
    market's lots at `moment` (the end of as_of)."""
    sql = (
        "SELECT SUM(CASE WHEN available_on > %s THEN remaining ELSE 0 END), NULL FROM ("
        + _LOTS_AT_SQL
        + ") lots UNION ALL SELECT SUM(remaining), expires_on FROM ("
        + _LOTS_AT_SQL
        + ") lots WHERE remaining > 0 AND expires_on > %s GROUP BY expires_on"
    )
    params = [as_of, moment, market.pk, moment, moment, market.pk, moment, as_of]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    pending = int(rows[0][0] or 0)
    expiring = {
        (dt.date.fromisoformat(day) if isinstance(day, str) else day): int(points)
        for points, day in rows[1:]
    }
    return pending, expiring


# The lots due by today that the ageing job has not matured yet (few: the
# partial index of the unmatured ones), each one's member looked up by its
# key: joined, the planner guesses many and hashes every member of the market.
_LOTS_DUE_SQL = """
SELECT COALESCE(SUM(l.remaining), 0) FROM loyalty_lot l
WHERE NOT l.matured AND l.available_on <= %s
  AND (SELECT m.market_id FROM members_member m WHERE m.id = l.member_id) = %s
"""


@dataclass(frozen=True)
class _Span:
    """The days a liability report covers (market time)."""

    today: dt.date
    as_of: dt.date
    end: dt.datetime  # the end of as_of
    first: dt.date  # the 1st of the first of the twelve months
    first_at: dt.datetime  # its start
    this_month: dt.date  # the 1st of as_of's month
    horizon: dt.date  # the expiries shown end before it (twelve months on)


@dataclass
class _Ledger:
    """What the liability report reads: the opening points before the
    twelve months, the points booked per (month, kind) in them, the lots as
    they stand today (pending, remaining per expiry month after today; None
    for a past as_of: rebuilt apart, _lots_at) and the points held."""

    opening: int = 0
    booked: dict[tuple[dt.date, str], int] = field(default_factory=dict)
    pending: int | None = None
    expiring: dict[dt.date, int] | None = None
    held: int = 0


def _by_month(by_day: dict[dt.date, int]) -> dict[dt.date, int]:
    by_month: dict[dt.date, int] = {}
    for day, points in by_day.items():
        month = day.replace(day=1)
        by_month[month] = by_month.get(month, 0) + points
    return by_month


def _lots_sum(
    groups: dict[tuple[dt.date, dt.date], int], due: int, today: dt.date
) -> tuple[int, dict[dt.date, int]]:
    """(pending, remaining per expiry month after today) of the lots'
    points per (expiry day, availability day): a lot available after today
    is pending, and so are the `due` points of the lots available by today
    that the ageing job has not matured yet (read live: the few of the day)."""
    pending = due + sum(
        points for (_, available_on), points in groups.items() if available_on > today
    )
    expiring: dict[dt.date, int] = {}
    for (expires_on, _), points in groups.items():
        if expires_on > today:
            expiring[expires_on] = expiring.get(expires_on, 0) + points
    return pending, _by_month(expiring)


# What the liability report reads (PostgreSQL), a row (part, month, kind,
# points) per figure, in two statements: the rolled-up rows as of the
# rollup's marks, and the entries, lots and movements above the marks, read
# live by their keys (the members' market looked up per row: few rows). Each
# reads the marks' version beside its figures.
#   opening: the points booked before the twelve months;
#   booked (month, kind): those of each of the twelve months, as_of's month
#     from its days up to as_of (as_of today: its month row, the same sum,
#     since nothing is booked after today);
#   lots (expiry month after today or NULL, 'pending' or NULL): the lots as
#     they stand today, only when as_of is today (%(lots)s): a lot's
#     remaining is its points plus its movements; pending are the lots
#     available after today, and the due (live): those due by today that
#     the ageing job has not matured yet (the few of the day);
#   held (live): the points of the open holds made by the end of as_of.
_LIABILITY_ROLLED_SQL = (
    """
SELECT 'opening', NULL::date, NULL::text, COALESCE(SUM(points), 0) FROM insights_ledgermonth
WHERE market_id = %(market)s AND month < %(first)s
UNION ALL
SELECT 'booked', month, kind, SUM(points) FROM (
    SELECT month, kind, points FROM insights_ledgermonth
    WHERE market_id = %(market)s AND month >= %(first)s
      AND (month < %(this_month)s OR (%(lots)s AND month = %(this_month)s))
    UNION ALL
    SELECT %(this_month)s, kind, points FROM insights_ledgerday
    WHERE NOT %(lots)s AND market_id = %(market)s AND day >= %(this_month)s AND day <= %(as_of)s
) booked GROUP BY month, kind
UNION ALL
SELECT 'lots', CASE WHEN expires_on > %(today)s THEN date_trunc('month', expires_on)::date END,
       CASE WHEN available_on > %(today)s THEN 'pending' END, SUM(points)
FROM insights_lotday
WHERE %(lots)s AND market_id = %(market)s
  AND ((expires_on > %(today)s AND expires_on < %(horizon)s) OR available_on > %(today)s)
GROUP BY 2, 3
UNION ALL
SELECT 'marks', NULL, """
    + _MARKS_VERSION
    + """, NULL
"""
)

_LIABILITY_LIVE_SQL = (
    """
WITH live_entries AS (
    SELECT e.created_at, e.kind, e.points FROM loyalty_ledgerentry e
    WHERE e.id > %(entry)s AND e.created_at < %(end)s
      AND (SELECT m.market_id FROM members_member m WHERE m.id = e.member_id) = %(market)s
)
SELECT 'opening', NULL::date, NULL::text, COALESCE(SUM(points), 0) FROM live_entries
WHERE created_at < %(first_at)s
UNION ALL
SELECT 'booked', date_trunc('month', created_at AT TIME ZONE %(tz)s)::date, kind, SUM(points)
FROM live_entries WHERE created_at >= %(first_at)s GROUP BY 2, 3
UNION ALL
SELECT 'lots', CASE WHEN expires_on > %(today)s THEN date_trunc('month', expires_on)::date END,
       CASE WHEN available_on > %(today)s THEN 'pending' END, SUM(points)
FROM (
    SELECT l.expires_on, l.available_on, l.points FROM loyalty_lot l
    WHERE %(lots)s AND l.entry_id > %(entry)s
      AND (SELECT m.market_id FROM members_member m WHERE m.id = l.member_id) = %(market)s
    UNION ALL
    SELECT l.expires_on, l.available_on, mv.points
    FROM loyalty_lotmovement mv JOIN loyalty_lot l ON l.id = mv.lot_id
    WHERE %(lots)s AND mv.id > %(movement)s
      AND (SELECT m.market_id FROM members_member m WHERE m.id = l.member_id) = %(market)s
) lots GROUP BY 2, 3
UNION ALL
SELECT 'due', NULL, NULL, SUM(l.remaining) FROM loyalty_lot l
WHERE %(lots)s AND NOT l.matured AND l.available_on <= %(today)s
  AND (SELECT m.market_id FROM members_member m WHERE m.id = l.member_id) = %(market)s
UNION ALL
SELECT 'held', NULL, NULL, SUM(r.points) FROM loyalty_redemption r
JOIN members_member m ON m.id = r.member_id
WHERE r.status = 'held' AND r.created_at < %(end)s AND m.market_id = %(market)s
UNION ALL
SELECT 'marks', NULL, """
    + _MARKS_VERSION
    + """, NULL
"""
)

# The rolled-up part of the liability reports this process read, by
# (market, as_of, today, marks' version): the rollup's tables change only
# with its marks, so what was read of them stands until the marks move, and
# a report reads only what lies above them (one statement).
_liabilities_rolled: Recent[_Ledger] = Recent(seconds=900, max_size=64)


def _ledger_add(ledger: _Ledger, rows: Any) -> str:
    """Add a statement's figures (_LIABILITY_ROLLED_SQL's, _LIABILITY_LIVE_SQL's)
    to `ledger`; its marks' version."""
    version = ""
    for part, month, kind, points in rows:
        if part == "marks":
            version = kind
            continue
        points = int(points or 0)
        if part == "booked":
            ledger.booked[(month, kind)] = ledger.booked.get((month, kind), 0) + points
        elif part == "opening":
            ledger.opening += points
        elif part == "held":
            ledger.held += points
        elif ledger.pending is not None and ledger.expiring is not None:  # lots, due
            if kind == "pending" or part == "due":
                ledger.pending += points
            if month is not None:
                ledger.expiring[month] = ledger.expiring.get(month, 0) + points
    return version


def _liability_sql(market: Market, span: _Span, marks: _Marks) -> tuple[_Ledger, str]:
    """The report's figures: the rolled-up part as this process last read it
    for these marks (_liabilities_rolled; read when not), plus what lies
    above them, read live; and the marks' version the live part read."""
    lots = span.as_of == span.today
    params = {
        "market": market.pk,
        "entry": marks.entry_id,
        "movement": marks.movement_id,
        "end": span.end,
        "first": span.first,
        "first_at": span.first_at,
        "this_month": span.this_month,
        "as_of": span.as_of,
        "today": span.today,
        "horizon": span.horizon,
        "tz": market.time_zone,
        "lots": lots,
    }
    key = (market.pk, span.as_of, span.today, marks.version)
    with connection.cursor() as cursor:
        rolled = _liabilities_rolled.get(key)
        if rolled is None:
            rolled = _Ledger(pending=0 if lots else None, expiring={} if lots else None)
            cursor.execute(_bound(_LIABILITY_ROLLED_SQL, params))
            version = _ledger_add(rolled, cursor.fetchall())
            if version != marks.version:  # a rollup since the marks: read again
                return rolled, version
            _liabilities_rolled.put([key], rolled)
        ledger = _Ledger(
            opening=rolled.opening,
            booked=dict(rolled.booked),
            pending=rolled.pending,
            expiring=None if rolled.expiring is None else dict(rolled.expiring),
        )
        cursor.execute(_bound(_LIABILITY_LIVE_SQL, params))
        return ledger, _ledger_add(ledger, cursor.fetchall())


def _liability_orm(market: Market, span: _Span, marks: _Marks) -> tuple[_Ledger, str]:
    """The same figures read with the ORM, a statement per part: SQLite's
    way (make run), and the tests' second opinion of _liability_sql."""
    zone = ZoneInfo(market.time_zone)
    entries = LedgerEntry.objects.filter(
        member__market=market, created_at__lt=span.end, id__gt=marks.entry_id
    )
    # Rolled up: whole months before as_of's, its days up to as_of.
    rolled_months = LedgerMonth.objects.filter(market=market, month__lt=span.this_month)
    ledger = _Ledger()
    ledger.opening = (
        rolled_months.filter(month__lt=span.first).aggregate(total=Sum("points"))["total"] or 0
    ) + (entries.filter(created_at__lt=span.first_at).aggregate(total=Sum("points"))["total"] or 0)
    booked = ledger.booked
    for month, kind, points in rolled_months.filter(month__gte=span.first).values_list(
        "month", "kind", "points"
    ):
        booked[(month, kind)] = booked.get((month, kind), 0) + points
    for kind, points in (
        LedgerDay.objects.filter(market=market, day__gte=span.this_month, day__lte=span.as_of)
        .values("kind")
        .annotate(points=Sum("points"))
        .values_list("kind", "points")
        .order_by()
    ):
        booked[(span.this_month, kind)] = booked.get((span.this_month, kind), 0) + points
    for row in (
        entries.filter(created_at__gte=span.first_at)
        .annotate(month=TruncMonth("created_at", tzinfo=zone))
        .values("month", "kind")
        .annotate(points=Sum("points"))
        .order_by()
    ):
        key = (_as_date(row["month"]), row["kind"])
        booked[key] = booked.get(key, 0) + row["points"]
    if span.as_of == span.today:
        ledger.pending, ledger.expiring = _lots_now(market, span, marks)
    ledger.held = (
        Redemption.objects.filter(
            member__market=market, status=Redemption.Status.HELD, created_at__lt=span.end
        ).aggregate(points=Sum("points"))["points"]
        or 0
    )
    return ledger, _marks().version


def _lots_now(market: Market, span: _Span, marks: _Marks) -> tuple[int, dict[dt.date, int]]:
    """(pending points, remaining points per expiry month after today) of
    the market's lots as they stand, with the ORM: the rolled-up sums plus the
    lots and movements above the marks (a lot's remaining is its points
    plus its movements)."""
    today = span.today
    groups: dict[tuple[dt.date, dt.date], int] = {}

    def add(rows: Any) -> None:
        for expires_on, available_on, points in rows:
            key = (expires_on, available_on)
            groups[key] = groups.get(key, 0) + int(points or 0)

    add(
        LotDay.objects.filter(market=market)
        .filter(Q(expires_on__gt=today, expires_on__lt=span.horizon) | Q(available_on__gt=today))
        .values_list("expires_on", "available_on", "points")
    )
    add(
        Lot.objects.filter(member__market=market, entry_id__gt=marks.entry_id)
        .values("expires_on", "available_on")
        .annotate(points=Sum("points"))
        .values_list("expires_on", "available_on", "points")
        .order_by()
    )
    add(
        LotMovement.objects.filter(lot__member__market=market, id__gt=marks.movement_id)
        .values("lot__expires_on", "lot__available_on")
        .annotate(points=Sum("points"))
        .values_list("lot__expires_on", "lot__available_on", "points")
        .order_by()
    )
    with connection.cursor() as cursor:
        cursor.execute(_LOTS_DUE_SQL, [today, market.pk])
        (due,) = cursor.fetchone()
    return _lots_sum(groups, int(due or 0), today)


def liability_report(*, market: Market, as_of: dt.date | None = None) -> dict:
    """What the club owes in points, from the ledger as it is when asked, at
    the end of `as_of` (default today, market time). `months`: the twelve
    months up to as_of's (that one counted up to as_of), per ledger kind the
    sum of the entries booked in it, each closing the next opening, the last
    closing the outstanding total. `outstanding` and `expiring` are the lots
    as they stand for today (pending: the lots not matured), rebuilt from
    the lots' movements for a day past; `held` is the points of the holds
    open now that were made by then. The sums are `insights_rollup`'s
    rolled-up rows plus the entries, lots and movements above its marks,
    added live: exact whenever it last ran (on PostgreSQL the rolled-up rows
    are read once per process and marks, the rest in one statement,
    _liability_sql). The answer of `GET /api/v1/insights/liability`:
    {"market", "currency", "as_of", "point_value", "outstanding", "held",
    "expiring", "months", "breakage_rate_12m"}."""
    today = today_for(market)
    as_of = as_of or today
    if as_of > today:
        raise ValueError("as_of lies in the future")
    this_month = as_of.replace(day=1)
    first = _add_months(this_month, -11)
    span = _Span(
        today=today,
        as_of=as_of,
        end=_midnight(market, as_of + dt.timedelta(days=1)),
        first=first,
        first_at=_midnight(market, first),
        this_month=this_month,
        # The report shows the expiries of twelve months from today's.
        horizon=_add_months(today, 12),
    )
    read = _liability_sql if connection.vendor == "postgresql" else _liability_orm
    ledger = _with_marks(lambda marks: read(market, span, marks))
    opening, booked = ledger.opening, ledger.booked
    months = []
    for k in range(12):
        month = _add_months(first, k)
        movements = {name: booked.get((month, kind), 0) for name, kind in LIABILITY_KINDS.items()}
        closing = opening + sum(movements.values())
        months.append({"month": _month(month), "opening": opening, **movements, "closing": closing})
        opening = closing
    total = opening

    if ledger.pending is not None and ledger.expiring is not None:
        pending, expiring_by_month = ledger.pending, ledger.expiring
    else:
        pending, expiring_by_day = _lots_at(market, span.end, as_of)
        expiring_by_month = _by_month(expiring_by_day)
    held = ledger.held
    expired = -sum(m["expired"] for m in months)
    spent = -sum(m["redeemed"] for m in months) - sum(m["redeem_cancelled"] for m in months)
    divisor = expired + spent
    value = (Decimal(total) * market.point_value).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return {
        "market": market.code,
        "currency": market.currency,
        "as_of": as_of.isoformat(),
        "point_value": format(market.point_value.normalize(), "f"),
        "outstanding": {
            "available": total - pending,
            "pending": pending,
            "total": total,
            "value": str(value),
        },
        "held": held,
        "expiring": [
            {"month": _month(month), "points": expiring_by_month.get(month, 0)}
            for month in (_add_months(this_month, k) for k in range(12))
        ],
        "months": months,
        "breakage_rate_12m": _round(expired / divisor, 4) if divisor > 0 else None,
    }


# --- what the last refresh stored ------------------------------------------------------

# The contract's table: (segment, action), in its order.
SEGMENTS = (
    ("champions", "keep"),
    ("loyal", "keep"),
    ("cant_lose", "keep"),
    ("potential", "develop"),
    ("new", "develop"),
    ("at_risk", "develop"),
    ("hibernating", "let_go"),
    ("lost", "let_go"),
)


def _share(part: Any, whole: Any) -> float:
    return _round(float(part) / float(whole), 4) if whole else 0.0


def segments_summary(*, market: Market) -> dict[str, Any]:
    """The market's segments as its stored scores say now: {"members",
    "segments"} (one GROUP BY over the scores; `insights_refresh` stores it
    with the models, so the report reads one row)."""
    rows = {
        row["segment"]: row
        for row in MemberScore.objects.filter(market=market, segment__isnull=False)
        .values("segment")
        .annotate(members=Count("member_id"), revenue=Sum("monetary_12m"))
        .order_by()
    }
    members = sum(row["members"] for row in rows.values())
    revenue = sum((row["revenue"] or Decimal(0) for row in rows.values()), Decimal(0))
    segments = []
    for segment, action in SEGMENTS:
        row = rows.get(segment, {"members": 0, "revenue": Decimal(0)})
        segment_revenue = (row["revenue"] or Decimal(0)).quantize(Decimal("0.01"))
        segments.append(
            {
                "segment": segment,
                "action": action,
                "members": row["members"],
                "share": _share(row["members"], members),
                "revenue_12m": str(segment_revenue),
                "revenue_share": _share(segment_revenue, revenue),
            }
        )
    return {"members": members, "segments": segments}


# The market's last fitted row (insights_refresh), by its unique index, in
# one plain statement: compiling the ORM's query for it cost more than the
# read.
_FITTED_SQL = (
    "SELECT as_of, members, segments, purchase_model, spend_model FROM insights_fittedmodel"
    " WHERE market_id = %s ORDER BY as_of DESC LIMIT 1"
)


def _fitted(market: Market) -> dict[str, Any] | None:
    """The market's last fitted row: {"as_of", "members", "segments",
    "purchase_model", "spend_model"} (JSON decoded), or None."""
    with connection.cursor() as cursor:
        cursor.execute(_FITTED_SQL, [market.pk])
        row = cursor.fetchone()
    if row is None:
        return None
    as_of, members, *documents = row
    # Django has the drivers hand JSON back as text (JSONField decodes it).
    segments, purchase_model, spend_model = (
        json.loads(value) if isinstance(value, str) else value for value in documents
    )
    if isinstance(as_of, str):  # SQLite's raw dates
        as_of = dt.date.fromisoformat(as_of)
    return {
        "as_of": as_of,
        "members": members,
        "segments": segments,
        "purchase_model": purchase_model,
        "spend_model": spend_model,
    }


def segments_report(*, market: Market) -> dict:
    """The value segments of the market's last `insights_refresh` (stored
    with its models): every segment of the contract's table in its order
    (empty ones with 0). `members` is the members in a segment (profiled
    members who purchased); `share` and `revenue_share` are fractions of
    those members and of their net spend in the 12 months, four decimals.
    The answer of `GET /api/v1/insights/segments`: {"market", "as_of",
    "members", "segments": [{"segment", "action", "members", "share",
    "revenue_12m", "revenue_share"}]}; `as_of` null before the first
    refresh."""
    fitted = _fitted(market)
    if fitted is not None and fitted["segments"] is not None:
        summary = fitted["segments"]
    else:
        summary = segments_summary(market=market)
    return {
        "market": market.code,
        "as_of": fitted["as_of"].isoformat() if fitted else None,
        **summary,
    }


# The models' fields as the contract names them, each with its JSON type
# (the stored JSON may have held an integral float as an integer).
PURCHASE_MODEL_FIELDS = {"name": str, "r": float, "alpha": float, "a": float, "b": float}
SPEND_MODEL_FIELDS = {"name": str, "p": float, "q": float, "gamma": float, "members": int}


def _model_view(stored: dict[str, Any] | None, fields: dict[str, type]) -> dict[str, Any] | None:
    if stored is None:
        return None
    fields = {**fields, "log_likelihood": float}
    return {name: kind(stored[name]) for name, kind in fields.items()}


def model_report(*, market: Market) -> dict | None:
    """The purchase (BG/NBD) and spend (Gamma-Gamma) models of the market's
    last `insights_refresh`, or None when none was fitted yet. The answer of
    `GET /api/v1/insights/model`: {"market", "as_of", "time_unit", "members",
    "purchase_model", "spend_model"}; a model is null when the market's data
    were too few to fit it."""
    fitted = _fitted(market)
    if fitted is None:
        return None
    return {
        "market": market.code,
        "as_of": fitted["as_of"].isoformat(),
        "time_unit": "week",
        "members": fitted["members"],
        "purchase_model": _model_view(fitted["purchase_model"], PURCHASE_MODEL_FIELDS),
        "spend_model": _model_view(fitted["spend_model"], SPEND_MODEL_FIELDS),
    }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))


# What member_insights reads of a member's score.
_SCORE_FIELDS = (
    "as_of",
    "recency_days",
    "frequency_12m",
    "monetary_12m",
    "r",
    "f",
    "m",
    "segment",
    "action",
    "p_alive",
    "expected_purchases_90d",
    "expected_spend",
    "clv_12m",
)

# The member's score (when profiled) and latest NPS answer in one read;
# the answer is nps_latest's (same order, tests/insights/test_reports.py).
_MEMBER_INSIGHTS_SQL = (
    "SELECT "
    + ", ".join(f"s.{field}" for field in _SCORE_FIELDS)
    + """, n.score, n.occurred_at
FROM (SELECT %(member)s::bigint AS id) me
LEFT JOIN insights_memberscore s ON s.member_id = me.id AND %(profiling)s
LEFT JOIN LATERAL (
    SELECT a.score, a.occurred_at FROM insights_npsresponse a
    WHERE a.member_id = me.id ORDER BY a.occurred_at DESC, a.id DESC LIMIT 1
) n ON TRUE
"""
)


def _member_reads(member: Member, profiling: bool) -> tuple[dict[str, Any] | None, Any]:
    """(the member's score fields or None, their latest NPS answer or None)."""
    if connection.vendor != "postgresql":  # SQLite (make run): two reads
        score = None
        if profiling:
            score = MemberScore.objects.filter(member_id=member.pk).values(*_SCORE_FIELDS).first()
        return score, nps_latest(member=member)
    with connection.cursor() as cursor:
        cursor.execute(_MEMBER_INSIGHTS_SQL, {"member": member.pk, "profiling": profiling})
        row = cursor.fetchone()
    *fields, nps_score, answered_at = row
    score = dict(zip(_SCORE_FIELDS, fields, strict=True)) if fields[0] is not None else None
    nps = None
    if nps_score is not None:
        nps = {
            "score": nps_score,
            "category": NpsResponse.category_of(nps_score),
            "answered_at": answered_at.isoformat(),
        }
    return score, nps


def member_insights(*, member: Member) -> dict:
    """One member's scores, churn, value and latest NPS answer. A member
    without the profiling consent has `profiling` false and no scores
    (whatever an older refresh stored is not shown); a member who never
    purchased has no churn nor value. The answer of
    `GET /api/v1/members/{member_number}/insights`: {"member_number",
    "as_of", "profiling", "rfm", "churn", "value", "nps"}."""
    profiling = bool(member.profiling) and member.status == Member.Status.ACTIVE
    score, nps = _member_reads(member, profiling)
    out: dict[str, Any] = {
        "member_number": member.member_number,
        "as_of": score["as_of"].isoformat() if score else None,
        "profiling": profiling,
        "rfm": None,
        "churn": None,
        "value": None,
        "nps": nps,
    }
    if score is None:
        return out
    out["rfm"] = {
        "recency_days": score["recency_days"],
        "frequency_12m": score["frequency_12m"],
        "monetary_12m": _money(score["monetary_12m"]),
        "r": score["r"],
        "f": score["f"],
        "m": score["m"],
        "segment": score["segment"],
        "action": score["action"],
    }
    if score["p_alive"] is not None and score["expected_purchases_90d"] is not None:
        out["churn"] = {
            "p_alive": _round(score["p_alive"], 4),
            "expected_purchases_90d": _round(score["expected_purchases_90d"], 4),
        }
    if score["expected_spend"] is not None and score["clv_12m"] is not None:
        out["value"] = {
            "expected_spend": _money(score["expected_spend"]),
            "clv_12m": _money(score["clv_12m"]),
            "currency": member.market.currency,
        }
    return out
