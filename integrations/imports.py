"""Imports of another club's members and purchases from CSV files
(docs/imports.md): streamed in chunks, each chunk copied into a staging
table, checked with SQL and inserted set-based in one transaction.

A row is all or nothing and a bad row never stops the others: every check
marks the row's `error` in the staging table, and only the rows without one
are inserted. A chunk commits as a whole, so a run killed half way leaves
whole chunks behind, and running the file again finds them (members by
market and external id, purchases by store and receipt id): `unchanged`.

Postgres only (COPY, temporary tables); SQLite is refused with a clear
message.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone

from club.dates import today_for
from club.models import Market, Tier
from core.actors import Actor
from core.errors import ValidationFailed
from loyalty.ledger import accounts_open_bulk, expiry_for
from members.numbers import member_number_for, new_card_number
from members.selectors import normalize_phone

CHUNK_SIZE = 10_000
FIRST_ERRORS = 20
REPORT_COLUMNS = {
    "members": ["line", "external_id", "member_number", "status", "error"],
    "purchases": ["line", "receipt_id", "member_number", "status", "error"],
}
MEMBER_COLUMNS = [
    "external_id",
    "market",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "language",
    "enrolled_at",
    "card",
    "points",
    "points_expire_on",
    "tier",
    "marketing_email",
    "marketing_sms",
    "profiling",
]
MEMBER_REQUIRED = ["external_id", "market"]
PURCHASE_COLUMNS = [
    "member_external_id",
    "member_number",
    "store_code",
    "receipt_id",
    "occurred_at",
    "currency",
    "total",
    "category",
]
PURCHASE_REQUIRED = ["store_code", "receipt_id", "occurred_at", "currency", "total"]
CONSENTS = ("marketing_email", "marketing_sms", "profiling")
MAX_LENGTHS = {
    "external_id": 64,
    "email": 254,
    "first_name": 100,
    "last_name": 100,
    "language": 8,
    "card": 19,
    "member_external_id": 64,
    "member_number": 10,
    "receipt_id": 64,
    "category": 64,
}


@dataclass
class ImportResult:
    rows: int = 0
    created: int = 0
    unchanged: int = 0
    failed: int = 0
    first_errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, status: str, line: int, error: str | None) -> None:
        self.rows += 1
        setattr(self, status, getattr(self, status) + 1)
        if error and len(self.first_errors) < FIRST_ERRORS:
            self.first_errors.append({"line": line, "error": error})


Progress = Callable[[int], None]


def rows_count(path: str | Path) -> int:
    """The data rows of a file, about (a newline inside a quoted field
    counts as a row): the progress bar's total. Read in binary, fast."""
    lines = 0
    last = b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        lines += 1
    return max(lines - 1, 0)


def _chunks(
    handle: IO[str], *, columns: list[str], required: list[str], chunk_size: int
) -> Iterator[list[tuple[int, list[str]]]]:
    """(line number, values in `columns` order) per row, in chunks. The
    header is line 1; a row's number is the line it starts on."""
    reader = csv.reader(handle)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise ValidationFailed("The file is empty: it needs a header row.") from None
    unknown = [name for name in header if name not in columns]
    if unknown:
        raise ValidationFailed(
            f"Unknown column(s): {', '.join(unknown)}. The columns are: {', '.join(columns)}."
        )
    missing = [name for name in required if name not in header]
    if missing:
        raise ValidationFailed(f"Missing column(s): {', '.join(missing)}.")
    if len(set(header)) != len(header):
        raise ValidationFailed("A column is named twice in the header.")
    positions = [header.index(name) if name in header else None for name in columns]
    width = len(header)
    chunk: list[tuple[int, list[str]]] = []
    previous_end = 1
    for record in reader:
        line = previous_end + 1
        previous_end = reader.line_num
        if not record:
            continue  # a blank line is no row
        if len(record) != width:
            chunk.append((line, [f"expected {width} fields, found {len(record)}"]))
        else:
            chunk.append((line, [record[p] if p is not None else "" for p in positions]))
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _clean(values: list[str], columns: list[str]) -> tuple[str | None, list[str | None]]:
    """Empty becomes NULL, text is stripped; too long a value is the row's error."""
    cleaned: list[str | None] = []
    error = None
    for name, value in zip(columns, values, strict=True):
        value = value.strip()
        if "\x00" in value:
            error = error or f"{name}: contains a NUL character"
            value = value.replace("\x00", "")
        if value and name in MAX_LENGTHS and len(value) > MAX_LENGTHS[name]:
            error = error or f"{name}: longer than {MAX_LENGTHS[name]} characters"
        cleaned.append(value or None)
    return error, cleaned


# Dates and times checked in SQL without an exception (no subtransaction per
# row): None when the text is no valid ISO date (or date and time).
_FUNCTIONS_SQL = r"""
CREATE OR REPLACE FUNCTION pg_temp.lojal_date(v text) RETURNS date LANGUAGE sql IMMUTABLE AS $$
SELECT CASE
    WHEN v IS NULL OR v !~ '^\d{4}-\d{2}-\d{2}$' THEN NULL
    WHEN substr(v, 1, 4)::int < 1 THEN NULL
    WHEN substr(v, 6, 2)::int NOT BETWEEN 1 AND 12 THEN NULL
    WHEN substr(v, 9, 2)::int NOT BETWEEN 1 AND extract(day FROM make_date(
        substr(v, 1, 4)::int, substr(v, 6, 2)::int, 1) + interval '1 month' - interval '1 day')
        THEN NULL
    ELSE v::date
END $$;
CREATE OR REPLACE FUNCTION pg_temp.lojal_moment(v text, tz text) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
SELECT CASE
    WHEN v IS NULL OR tz IS NULL THEN NULL
    WHEN v ~ '^\d{4}-\d{2}-\d{2}$' THEN (pg_temp.lojal_date(v) + time '12:00') AT TIME ZONE tz
    WHEN v !~ '^\d{4}-\d{2}-\d{2}[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)?$'
        THEN NULL
    WHEN pg_temp.lojal_date(left(v, 10)) IS NULL THEN NULL
    WHEN v ~ '(Z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)$' THEN v::timestamptz
    ELSE v::timestamp AT TIME ZONE tz
END $$;
"""


def _postgres_check() -> None:
    if connection.vendor != "postgresql":
        raise ValidationFailed(
            "Imports need PostgreSQL (COPY and temporary tables); this database is "
            f"{connection.vendor}. Set DATABASE_URL to a PostgreSQL database."
        )


def _execute(sql: str, params: Any = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _copy(table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """The chunk into the staging table, with COPY (psycopg 3)."""
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _report_rows(table: str, key: str) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT line, {key}, member_number, "
            "CASE WHEN error IS NOT NULL THEN 'failed' ELSE status END, error "
            f"FROM {table} ORDER BY line"
        )
        return list(cursor.fetchall())


class _Run:
    """What both imports share: the chunks, their transactions, the report."""

    kind: str
    table: str
    key: str
    columns: list[str]
    required: list[str]

    def __init__(
        self,
        *,
        path: str | Path,
        actor: Actor,
        dry_run: bool,
        report: IO[str] | None,
        chunk_size: int,
        progress: Progress | None,
        pause: float,
    ) -> None:
        self.path = path
        self.actor = actor
        self.dry_run = dry_run
        self.report = csv.writer(report) if report is not None else None
        self.chunk_size = chunk_size
        self.progress = progress
        self.pause = pause
        self.result = ImportResult()

    def run(self) -> ImportResult:
        _postgres_check()
        try:
            handle = open(self.path, encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise ValidationFailed(f"Cannot read {self.path}: {exc.strerror}.") from exc
        with handle:
            if self.report is not None:
                self.report.writerow(REPORT_COLUMNS[self.kind])
            try:
                if self.dry_run:
                    # One transaction for the whole file, rolled back: the
                    # chunks see each other as they would, nothing stays.
                    with transaction.atomic():
                        self._all_chunks(handle)
                        transaction.set_rollback(True)
                else:
                    self._all_chunks(handle)
            except UnicodeDecodeError as exc:
                raise ValidationFailed(f"The file is not UTF-8 ({exc.reason}).") from exc
            finally:
                if not connection.needs_rollback:
                    self._drop()
        return self.result

    def _all_chunks(self, handle: IO[str]) -> None:
        self._setup()
        first = True
        for chunk in _chunks(
            handle, columns=self.columns, required=self.required, chunk_size=self.chunk_size
        ):
            if not first and self.pause:
                time.sleep(self.pause)  # tests: time to kill a run between chunks
            first = False
            with transaction.atomic():
                _execute(f"TRUNCATE {self.table}")
                _copy(
                    self.table,
                    ["line", "pre_error", *self.columns],
                    [self._prepare(line, values) for line, values in chunk],
                )
                _execute(f"ANALYZE {self.table}")  # temporary tables have no autovacuum
                self._chunk(now=timezone.now())
                rows = _report_rows(self.table, self.key)
            for line, key, member_number, status, error in rows:
                self.result.add(status, line, error)
                if self.report is not None:
                    self.report.writerow(
                        [line, key or "", member_number or "", status, error or ""]
                    )
            if self.progress is not None:
                self.progress(len(chunk))

    def _prepare(self, line: int, values: list[str]) -> tuple[Any, ...]:
        if len(values) == 1 and len(self.columns) != 1:
            return (line, values[0], *([None] * len(self.columns)))
        error, cleaned = _clean(values, self.columns)
        return (line, error, *cleaned)

    def _setup(self) -> None:
        _execute(_FUNCTIONS_SQL)
        self._drop()
        _execute(self.staging_sql)

    def _drop(self) -> None:
        _execute(f"DROP TABLE IF EXISTS {self.table}, {self.table}_seen")

    staging_sql = ""

    def _chunk(self, *, now: datetime) -> None:
        raise NotImplementedError

    def _fail(self, condition: str, error_sql: str, params: Any = None) -> None:
        """Rows still without an error that meet `condition` get `error_sql`."""
        _execute(
            f"UPDATE {self.table} s SET error = {error_sql} "
            f"WHERE s.error IS NULL AND ({condition})",
            params,
        )


# --- members -----------------------------------------------------------------


class _MembersRun(_Run):
    kind = "members"
    table = "lojal_import_members"
    key = "external_id"
    columns = MEMBER_COLUMNS
    required = MEMBER_REQUIRED
    staging_sql = """
    CREATE TEMP TABLE lojal_import_members (
        line int PRIMARY KEY, pre_error text,
        external_id text, market text, email text, phone text, first_name text,
        last_name text, birth_date text, language text, enrolled_at text, card text,
        points text, points_expire_on text, tier text, marketing_email text,
        marketing_sms text, profiling text,
        error text, status text, market_id bigint, tz text, tier_id bigint,
        birth_d date, enrolled_ts timestamptz, points_n int, expire_d date,
        me boolean, ms boolean, pr boolean,
        member_id bigint, member_number text
    );
    CREATE INDEX ON lojal_import_members (external_id);
    CREATE TEMP TABLE lojal_import_members_seen (
        market_id bigint, external_id text, line int, PRIMARY KEY (market_id, external_id)
    );
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.markets = {m.code: m for m in Market.objects.all()}
        self.base_tier = Tier.objects.order_by("rank").first()
        if self.base_tier is None:
            raise ValidationFailed("The club has no tier yet.")

    def _prepare(self, line: int, values: list[str]) -> tuple[Any, ...]:
        row = super()._prepare(line, values)
        if row[1] is not None:
            return row
        data = dict(zip(self.columns, row[2:], strict=True))
        error = None
        if data["email"]:
            try:
                validate_email(data["email"])
            except ValidationError:
                error = "email: not a valid email address"
        if data["phone"] and error is None:
            market = self.markets.get((data["market"] or "").upper())
            try:
                data["phone"] = normalize_phone(
                    data["phone"], region=market.code if market else None
                )
            except ValidationFailed:
                error = "phone: not a valid phone number"
        return (line, error, *(data[name] for name in self.columns))

    def _chunk(self, *, now: datetime) -> None:
        t = self.table
        fail = self._fail
        _execute(f"UPDATE {t} SET error = pre_error WHERE pre_error IS NOT NULL")
        fail("s.external_id IS NULL", "'external_id is required'")
        fail("s.market IS NULL", "'market is required'")
        _execute(
            f"UPDATE {t} s SET market_id = m.id, tz = m.time_zone FROM club_market m "
            "WHERE m.code = upper(s.market) AND s.error IS NULL"
        )
        fail("s.market_id IS NULL", "'unknown market ' || s.market")
        fail("s.email IS NULL AND s.phone IS NULL", "'email or phone is required'")
        _execute(
            f"UPDATE {t} SET birth_d = pg_temp.lojal_date(birth_date), "
            "enrolled_ts = coalesce(pg_temp.lojal_moment(enrolled_at, tz), "
            "CASE WHEN enrolled_at IS NULL THEN %(now)s END), "
            "points_n = CASE WHEN points IS NULL THEN 0 "
            r"WHEN points ~ '^\d{1,9}$' THEN points::int END, "
            "expire_d = pg_temp.lojal_date(points_expire_on), "
            "me = CASE lower(marketing_email) WHEN 'true' THEN true WHEN 'false' THEN false END, "
            "ms = CASE lower(marketing_sms) WHEN 'true' THEN true WHEN 'false' THEN false END, "
            "pr = CASE lower(profiling) WHEN 'true' THEN true WHEN 'false' THEN false END "
            "WHERE error IS NULL",
            {"now": now},
        )
        fail(
            "s.birth_date IS NOT NULL AND s.birth_d IS NULL",
            "'birth_date: not a date (YYYY-MM-DD): ' || s.birth_date",
        )
        fail("s.birth_d > %(today)s", "'birth_date lies in the future'", {"today": now.date()})
        fail(
            "s.enrolled_ts IS NULL",
            "'enrolled_at: not an ISO date or date and time: ' || s.enrolled_at",
        )
        fail("s.enrolled_ts > %(now)s", "'enrolled_at lies in the future'", {"now": now})
        fail("s.points_n IS NULL", "'points: not a whole number of 0 or more: ' || s.points")
        fail(
            "s.points_expire_on IS NOT NULL AND s.expire_d IS NULL",
            "'points_expire_on: not a date (YYYY-MM-DD): ' || s.points_expire_on",
        )
        for market in self.markets.values():
            today = today_for(market, now)
            fail(
                "s.market_id = %(market)s AND s.expire_d < %(today)s",
                "'points_expire_on lies in the past'",
                {"market": market.pk, "today": today},
            )
            _execute(
                f"UPDATE {t} SET expire_d = %(expiry)s WHERE error IS NULL "
                "AND market_id = %(market)s AND expire_d IS NULL",
                {"market": market.pk, "expiry": expiry_for(market, today)},
            )
        _execute(
            f"UPDATE {t} s SET tier_id = r.id FROM club_tier r "
            "WHERE r.code = lower(s.tier) AND s.error IS NULL"
        )
        fail("s.tier IS NOT NULL AND s.tier_id IS NULL", "'unknown tier ' || s.tier")
        for name, column in (
            ("marketing_email", "me"),
            ("marketing_sms", "ms"),
            ("profiling", "pr"),
        ):
            fail(
                f"s.{name} IS NOT NULL AND s.{column} IS NULL",
                f"'{name}: true or false, not ' || s.{name}",
            )
        # Duplicates in the file: the first line keeps the id, in this chunk
        # or an earlier one.
        fail(
            f"EXISTS (SELECT 1 FROM {t}_seen x WHERE x.market_id = s.market_id "
            "AND x.external_id = s.external_id)",
            f"(SELECT 'duplicate external_id ' || s.external_id || ' in the file (line ' "
            f"|| x.line || ')' FROM {t}_seen x WHERE x.market_id = s.market_id "
            "AND x.external_id = s.external_id)",
        )
        fail(
            f"EXISTS (SELECT 1 FROM {t} o WHERE o.market_id = s.market_id "
            "AND o.external_id = s.external_id AND o.line < s.line)",
            f"(SELECT 'duplicate external_id ' || s.external_id || ' in the file (line ' "
            f"|| min(o.line) || ')' FROM {t} o WHERE o.market_id = s.market_id "
            "AND o.external_id = s.external_id AND o.line < s.line)",
        )
        _execute(
            f"INSERT INTO {t}_seen (market_id, external_id, line) "
            f"SELECT DISTINCT ON (market_id, external_id) market_id, external_id, line FROM {t} "
            "WHERE market_id IS NOT NULL AND external_id IS NOT NULL "
            "ORDER BY market_id, external_id, line ON CONFLICT DO NOTHING"
        )
        # Members imported already (an earlier run, or an earlier chunk).
        self._existing()
        fail(
            "s.status IS NULL AND s.card IS NOT NULL AND EXISTS "
            "(SELECT 1 FROM members_card c WHERE c.number = s.card)",
            "'card ' || s.card || ' belongs to another member'",
        )
        fail(
            f"s.status IS NULL AND s.card IS NOT NULL AND EXISTS (SELECT 1 FROM {t} o "
            "WHERE o.card = s.card AND o.line < s.line AND o.error IS NULL)",
            "'card ' || s.card || ' is given twice in the file'",
        )
        self._insert(now=now)

    def _existing(self) -> None:
        _execute(
            f"UPDATE {self.table} s SET status = 'unchanged', member_id = m.id, "
            "member_number = m.member_number FROM members_member m "
            "WHERE m.market_id = s.market_id AND m.external_id = s.external_id "
            "AND s.error IS NULL AND s.status IS NULL"
        )

    def _insert(self, *, now: datetime) -> None:
        t = self.table
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
            WITH new AS (
                INSERT INTO members_member (
                    market_id, external_id, status, email, phone, first_name, last_name,
                    birth_date, language, channel, enrolled_at, marketing_email, marketing_sms,
                    profiling, consents_updated_at, tier_id, tier_valid_until, updated_at)
                SELECT s.market_id, s.external_id, 'active', s.email, s.phone,
                       coalesce(s.first_name, ''), coalesce(s.last_name, ''), s.birth_d,
                       coalesce(s.language, m.language), 'staff', s.enrolled_ts,
                       coalesce(s.me, false), coalesce(s.ms, false), coalesce(s.pr, false),
                       CASE WHEN coalesce(s.me, s.ms, s.pr) IS NOT NULL THEN %(now)s END,
                       coalesce(s.tier_id, %(base)s),
                       CASE WHEN s.tier_id IS NOT NULL
                            THEN ((%(now)s AT TIME ZONE s.tz)::date + interval '12 months')::date END,
                       %(now)s
                FROM {t} s JOIN club_market m ON m.id = s.market_id
                WHERE s.error IS NULL AND s.status IS NULL
                ORDER BY s.line
                ON CONFLICT (external_id, market_id) WHERE external_id IS NOT NULL DO NOTHING
                RETURNING id, market_id, external_id
            )
            UPDATE {t} s SET status = 'created', member_id = new.id
            FROM new WHERE s.market_id = new.market_id AND s.external_id = new.external_id
              AND s.error IS NULL AND s.status IS NULL
            RETURNING s.member_id, s.card, s.points_n, s.expire_d
            """,
                {"now": now, "base": self.base_tier.pk},
            )
            created = cursor.fetchall()
        # A parallel run took some of them meanwhile: theirs now.
        self._existing()
        if not created:
            return
        member_ids = [row[0] for row in created]
        numbers = [member_number_for(member_id) for member_id in member_ids]
        _execute(
            "UPDATE members_member m SET member_number = n.number "
            "FROM unnest(%s::bigint[], %s::text[]) AS n(id, number) WHERE m.id = n.id",
            [member_ids, numbers],
        )
        _execute(
            f"UPDATE {t} s SET member_number = n.number "
            "FROM unnest(%s::bigint[], %s::text[]) AS n(id, number) WHERE s.member_id = n.id",
            [member_ids, numbers],
        )
        self._cards(now=now, cards={row[0]: row[1] for row in created})
        accounts_open_bulk(
            member_ids=member_ids,
            points=[row[2] for row in created],
            expires_on=[row[3] for row in created],
            reason="import",
            reference=f"import:{Path(self.path).name}",
            today=now.date(),
            now=now,
        )
        _execute(
            f"""
            INSERT INTO loyalty_tierchange (member_id, from_tier_id, to_tier_id, cause, reason,
                                            valid_until, changed_at)
            SELECT s.member_id, %(base)s, s.tier_id, 'import', %(reason)s, m.tier_valid_until, %(now)s
            FROM {t} s JOIN members_member m ON m.id = s.member_id
            WHERE s.status = 'created' AND s.tier_id IS NOT NULL
        """,
            {"base": self.base_tier.pk, "now": now, "reason": f"imported by {self.actor.name}"},
        )
        _execute(
            f"""
            INSERT INTO members_consentchange (member_id, consent, granted, at, source)
            SELECT s.member_id, c.consent, c.granted, %(now)s, 'import'
            FROM {t} s CROSS JOIN LATERAL (VALUES ('marketing_email', s.me),
                ('marketing_sms', s.ms), ('profiling', s.pr)) AS c(consent, granted)
            WHERE s.status = 'created' AND c.granted IS NOT NULL
        """,
            {"now": now},
        )

    def _cards(self, *, now: datetime, cards: dict[int, str | None]) -> None:
        """The given card, kept; else a new number (drawn again on the rare
        collision)."""
        wanted = {member_id: card or new_card_number() for member_id, card in cards.items()}
        for _ in range(5):
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO members_card (number, member_id, status, issued_at) "
                    "SELECT number, member_id, 'active', %s "
                    "FROM unnest(%s::text[], %s::bigint[]) AS c(number, member_id) "
                    "ON CONFLICT (number) DO NOTHING RETURNING member_id",
                    [now, list(wanted.values()), list(wanted.keys())],
                )
                done = {row[0] for row in cursor.fetchall()}
            missing = {k: v for k, v in wanted.items() if k not in done}
            if not missing:
                return
            if any(cards[k] for k in missing):
                raise RuntimeError("a given card number was taken during the import")
            wanted = {k: new_card_number() for k in missing}
        raise RuntimeError("could not draw free card numbers")


# --- purchases ---------------------------------------------------------------


class _PurchasesRun(_Run):
    kind = "purchases"
    table = "lojal_import_purchases"
    key = "receipt_id"
    columns = PURCHASE_COLUMNS
    required = PURCHASE_REQUIRED
    staging_sql = """
    CREATE TEMP TABLE lojal_import_purchases (
        line int PRIMARY KEY, pre_error text,
        member_external_id text, member_number text, store_code text, receipt_id text,
        occurred_at text, currency text, total text, category text,
        error text, status text, store_id bigint, channel text, market_id bigint, tz text,
        market_currency text, excluded jsonb, member_id bigint, occurred_ts timestamptz,
        total_n numeric(12, 2), body_hash text, first_line int, found_number text
    );
    CREATE INDEX ON lojal_import_purchases (receipt_id);
    """

    def _chunk(self, *, now: datetime) -> None:
        t = self.table
        fail = self._fail
        _execute(f"UPDATE {t} SET error = pre_error WHERE pre_error IS NOT NULL")
        fail("s.store_code IS NULL", "'store_code is required'")
        fail("s.receipt_id IS NULL", "'receipt_id is required'")
        fail(
            "s.member_external_id IS NULL AND s.member_number IS NULL",
            "'member_external_id or member_number is required'",
        )
        _execute(
            f"UPDATE {t} s SET store_id = st.id, channel = st.channel, market_id = m.id, "
            "tz = m.time_zone, market_currency = m.currency, excluded = m.excluded_categories "
            "FROM club_store st JOIN club_market m ON m.id = st.market_id "
            "WHERE st.code = s.store_code AND s.error IS NULL"
        )
        fail("s.store_id IS NULL", "'unknown store ' || s.store_code")
        _execute(
            f"UPDATE {t} s SET member_id = m.id, found_number = m.member_number "
            "FROM members_member m WHERE m.market_id = s.market_id "
            "AND m.external_id = s.member_external_id AND s.error IS NULL"
        )
        fail(
            "s.member_external_id IS NOT NULL AND s.member_id IS NULL",
            "'unknown member_external_id ' || s.member_external_id || ' in market ' || "
            "(SELECT code FROM club_market WHERE id = s.market_id)",
        )
        fail(
            "s.member_number IS NOT NULL AND s.found_number IS NOT NULL "
            "AND s.member_number <> s.found_number",
            "'member_number ' || s.member_number || ' is not member_external_id ' "
            "|| s.member_external_id",
        )
        _execute(
            f"UPDATE {t} SET member_number = found_number "
            "WHERE member_number IS NULL AND found_number IS NOT NULL"
        )
        fail(
            "s.member_id IS NULL AND NOT EXISTS (SELECT 1 FROM members_member m "
            "WHERE m.member_number = s.member_number)",
            "'unknown member_number ' || s.member_number",
        )
        fail(
            "s.member_id IS NULL AND NOT EXISTS (SELECT 1 FROM members_member m "
            "WHERE m.member_number = s.member_number AND m.market_id = s.market_id)",
            "'store ' || s.store_code || ' is not in the member''s market'",
        )
        _execute(
            f"UPDATE {t} s SET member_id = m.id FROM members_member m "
            "WHERE s.member_id IS NULL AND m.member_number = s.member_number "
            "AND m.market_id = s.market_id AND s.error IS NULL"
        )
        _execute(
            f"UPDATE {t} SET occurred_ts = pg_temp.lojal_moment(occurred_at, tz), "
            r"total_n = CASE WHEN total ~ '^\d{1,10}(\.\d{1,2})?$' THEN total::numeric END "
            "WHERE error IS NULL"
        )
        fail("s.occurred_at IS NULL", "'occurred_at is required'")
        fail(
            "s.occurred_ts IS NULL",
            "'occurred_at: not an ISO date or date and time: ' || s.occurred_at",
        )
        fail(
            "s.occurred_ts > %(limit)s",
            "'occurred_at lies in the future'",
            {"limit": now + timedelta(minutes=5)},
        )
        fail("s.currency IS NULL", "'currency is required'")
        fail(
            "s.currency <> s.market_currency",
            "'currency ' || s.currency || ' is not the market''s (' || s.market_currency || ')'",
        )
        fail("s.total IS NULL", "'total is required'")
        fail(
            "s.total_n IS NULL",
            "'total: not an amount of 0 or more (at most 2 decimals): ' || s.total",
        )
        _execute(f"""
            UPDATE {t} s SET body_hash = encode(sha256(convert_to(concat_ws('|', 'import',
                s.member_id, s.receipt_id, extract(epoch FROM s.occurred_ts)::text, s.currency,
                s.total_n::text, coalesce(s.category, '')), 'UTF8')), 'hex'),
                first_line = f.first_line
            FROM (SELECT store_id, receipt_id, min(line) AS first_line FROM {t}
                  WHERE error IS NULL GROUP BY store_id, receipt_id) f
            WHERE f.store_id = s.store_id AND f.receipt_id = s.receipt_id AND s.error IS NULL
        """)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
            WITH new AS (
                INSERT INTO loyalty_purchase (
                    id, member_id, store_id, receipt_id, channel, occurred_at, currency, total,
                    qualifying_amount, lines, points_earned, base_points, returned_amount,
                    returned_qualifying_amount, points_reversed, base_points_reversed, body_hash,
                    response, imported, created_at)
                SELECT gen_random_uuid(), s.member_id, s.store_id, s.receipt_id, s.channel,
                       s.occurred_ts, s.currency, s.total_n,
                       CASE WHEN s.category IS NOT NULL AND coalesce(s.excluded, '[]') ? s.category
                            THEN 0 ELSE s.total_n END,
                       CASE WHEN s.category IS NULL THEN '[]'::jsonb
                            ELSE jsonb_build_array(jsonb_build_object('sku', '', 'category',
                                 s.category, 'quantity', 1, 'amount', s.total_n::text)) END,
                       0, 0, 0, 0, 0, 0, s.body_hash, '{{"imported": true}}'::jsonb, true, %(now)s
                FROM {t} s WHERE s.error IS NULL AND s.line = s.first_line
                ORDER BY s.line
                ON CONFLICT (store_id, receipt_id) DO NOTHING
                RETURNING store_id, receipt_id
            )
            UPDATE {t} s SET status = 'created' FROM new
            WHERE s.store_id = new.store_id AND s.receipt_id = new.receipt_id
              AND s.line = s.first_line AND s.error IS NULL
            """,
                {"now": now},
            )
        _execute(
            f"UPDATE {t} s SET status = 'unchanged' FROM loyalty_purchase p "
            "WHERE p.store_id = s.store_id AND p.receipt_id = s.receipt_id "
            "AND p.body_hash = s.body_hash AND s.error IS NULL AND s.status IS NULL"
        )
        fail("s.status IS NULL", "'duplicate receipt with another body'")


def members_import(
    *,
    path: str | Path,
    actor: Actor,
    dry_run: bool = False,
    report: IO[str] | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
    pause: float = 0,
) -> ImportResult:
    """Members from a CSV file (docs/imports.md): each with a card, a points
    account with its opening balance, its tier and consents."""
    return _MembersRun(
        path=path,
        actor=actor,
        dry_run=dry_run,
        report=report,
        chunk_size=chunk_size,
        progress=progress,
        pause=pause,
    ).run()


def purchases_import(
    *,
    path: str | Path,
    actor: Actor,
    dry_run: bool = False,
    report: IO[str] | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
    pause: float = 0,
) -> ImportResult:
    """Purchases as history from a CSV file (docs/imports.md): no points,
    no qualifying points, marked imported."""
    return _PurchasesRun(
        path=path,
        actor=actor,
        dry_run=dry_run,
        report=report,
        chunk_size=chunk_size,
        progress=progress,
        pause=pause,
    ).run()


IMPORTERS: dict[str, Callable[..., ImportResult]] = {
    "members": members_import,
    "purchases": purchases_import,
}
