"""Imports of another club's members and purchases from CSV files
(docs/imports.md): streamed in chunks, each chunk copied into a staging
table, checked in one set-based statement and inserted set-based, in one
transaction.

A row is all or nothing and a bad row never stops the others: the check
gives each row its first error, and only the rows without one are
inserted. A chunk commits as a whole, so a run killed half way leaves
whole chunks behind, and running the file again finds them (members by
market and external id, purchases by store and receipt id): `unchanged`.

The file's lines go to the server's CSV parser (`COPY ... FORMAT csv`) as
they are, without a Python loop per row, when they hold no quote: then
the server reads each line as one row, as Python's csv module would, and
the check trims the same whitespace the csv path strips. A chunk with a
quote (a quoted field may span lines), or one the server refuses (a row
with too many or too few fields, a NUL, a blank line, a byte that is not
UTF-8), is read record by record by the csv module from the same place,
with the same line numbers and report.

Postgres only (COPY, temporary tables); SQLite is refused with a clear
message.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from club.dates import today_for
from club.models import Market, Tier
from core.actors import Actor
from core.errors import ValidationFailed
from loyalty.ledger import accounts_open_bulk, expiry_for
from members.numbers import CARD_PREFIX, MEMBER_NUMBER_BASE
from members.selectors import normalize_phone

logger = logging.getLogger(__name__)

CHUNK_SIZE = 100_000
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

# Python's str.strip() whitespace, which the check trims in SQL as well (the
# server's CSV parser keeps it).
_WHITESPACE = [c for c in range(0x10000) if chr(c).isspace()]
_WHITESPACE_SQL = "E'" + "".join(f"\\u{c:04x}" for c in _WHITESPACE) + "'"
# The first or last character of a value to trim (0: the empty string).
_EDGES_SQL = "'{" + ",".join(str(c) for c in [0, *_WHITESPACE]) + "}'::int[]"


def _trim(column: str) -> str:
    """A value as Python's csv path cleans it: stripped, empty as NULL."""
    return f"nullif(btrim({column}, {_WHITESPACE_SQL}), '')"


# A shape of email address that Django's validate_email surely accepts
# (dot-atom @ ASCII host names, a TLD of letters; with a domain of at most
# 63 characters, so no label is longer): Python checks only the few other
# addresses. No counted repetition: the server's regex engine is slow at
# those.
_PLAIN_EMAIL = (
    r"^[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+)*"
    r"@([A-Za-z0-9]+(-+[A-Za-z0-9]+)*\.)+[A-Za-z][A-Za-z]+$"
)


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


def _header_check(header: list[str], *, columns: list[str], required: list[str]) -> list[str]:
    header = [name.strip() for name in header]
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
    return header


def _records(
    reader: Any, *, header: list[str], columns: list[str], previous_end: int, base: int
) -> Iterator[tuple[int, list[str]]]:
    """(line number, values in `columns` order) per record of a csv reader;
    a record's number is the line it starts on. `base`: the lines before
    the reader's first."""
    positions = [header.index(name) if name in header else None for name in columns]
    width = len(header)
    for record in reader:
        line = previous_end + 1
        previous_end = base + reader.line_num
        if not record:
            continue  # a blank line is no row
        if len(record) != width:
            yield line, [f"expected {width} fields, found {len(record)}"]
        else:
            yield line, [record[p] if p is not None else "" for p in positions]


@dataclass
class _Plain:
    """Lines of the file without a quote, for the server's CSV parser: if
    it reads one row per line, it reads them as the csv module would."""

    first_line: int
    offset: int
    data: bytes
    rows: int


@dataclass
class _Parsed:
    """Rows parsed in Python: (line number, values in the columns' order)."""

    rows: list[tuple[int, list[str]]]


class _LoneCarriageReturn(Exception):
    """A carriage return not before a newline: a line break for the csv
    module, which only its own reading of the rest of the file follows."""


class _File:
    """A CSV file in chunks of about `chunk_size` rows: plain lines as bytes
    for the server, the others (and plain ones the server refused: too many
    or too few fields, a NUL, a byte that is not UTF-8, a blank line) read
    by the csv module, record by record from the same place, so that line
    numbers stay those of the file."""

    def __init__(
        self, handle: IO[bytes], *, columns: list[str], required: list[str], chunk_size: int
    ) -> None:
        self.handle = handle
        self.columns = columns
        self.chunk_size = chunk_size
        self.stream: Iterator[_Parsed] | None = None
        self.pending = b""
        self.line = 1
        self.header: list[str] = []
        try:
            records = self._read(1, header=True)
        except _LoneCarriageReturn:
            handle.seek(0)
            text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
            reader = csv.reader(text)
            try:
                self.header = _header_check(next(reader), columns=columns, required=required)
            except StopIteration:
                raise ValidationFailed("The file is empty: it needs a header row.") from None
            self.stream = self._stream(reader, base=0)
            return
        if not records:
            raise ValidationFailed("The file is empty: it needs a header row.")
        self.header = _header_check(records[0], columns=columns, required=required)

    def chunks(self) -> Iterator[_Plain | _Parsed]:
        while self.stream is None:
            offset, line = self.handle.tell() - len(self.pending), self.line
            data, self.pending, rows = _take(self.handle, self.pending, self.chunk_size)
            if not data:
                return
            if b'"' in data:
                yield self._parsed(offset, line, self.chunk_size)
                continue
            self.line += rows
            yield _Plain(line, offset, data, rows)
        yield from self.stream

    def refused(self, chunk: _Plain) -> _Parsed:
        """The plain chunk the server refused, read by the csv module."""
        return self._parsed(chunk.offset, chunk.first_line, lines=chunk.rows)

    def _parsed(self, offset: int, line: int, records: int = 0, lines: int = 0) -> _Parsed:
        self.handle.seek(offset)
        self.pending = b""
        self.line = line
        try:
            return _Parsed(self._rows(records=records, lines=lines))
        except _LoneCarriageReturn:
            # The csv module reads the rest of the file as a text stream.
            self.handle.seek(offset)
            text = io.TextIOWrapper(self.handle, encoding="utf-8", newline="")
            self.stream = self._stream(csv.reader(text), base=line - 1)
            return next(self.stream, _Parsed([]))

    def _lines(self, counter: list[int]) -> Iterator[str]:
        """The handle's lines, decoded, counted (csv pulls one line at a time
        and no more than a record needs)."""
        while raw := self.handle.readline():
            if raw.count(b"\r") != raw.endswith(b"\r\n"):
                raise _LoneCarriageReturn
            counter[0] += 1
            yield _decode(raw)

    def _read(self, records: int, *, header: bool = False) -> list[list[str]]:
        """The header's record (its BOM dropped)."""
        counter = [0]
        lines = self._lines(counter)
        if header:
            first = next(lines, None)
            if first is None:
                return []
            lines = itertools.chain([first.removeprefix("\ufeff")], lines)
        reader = csv.reader(lines)
        found = list(itertools.islice(reader, records))
        self.line += counter[0]
        return found

    def _rows(self, *, records: int, lines: int) -> list[tuple[int, list[str]]]:
        """Up to `records` rows (or the rows of the next `lines` lines, and
        maybe one more after blank ones)."""
        counter = [0]
        reader = csv.reader(self._lines(counter))
        base = self.line - 1
        rows: list[tuple[int, list[str]]] = []
        for line, values in _records(
            reader, header=self.header, columns=self.columns, previous_end=base, base=base
        ):
            rows.append((line, values))
            if (records and len(rows) >= records) or (lines and counter[0] >= lines):
                break
        self.line = base + 1 + counter[0]
        return rows

    def _stream(self, reader: Any, *, base: int) -> Iterator[_Parsed]:
        chunk: list[tuple[int, list[str]]] = []
        for record in _records(
            reader,
            header=self.header,
            columns=self.columns,
            previous_end=base + reader.line_num,
            base=base,
        ):
            chunk.append(record)
            if len(chunk) >= self.chunk_size:
                yield _Parsed(chunk)
                chunk = []
        if chunk:
            yield _Parsed(chunk)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"The file is not UTF-8 ({exc.reason}).") from exc


def _take(handle: IO[bytes], pending: bytes, count: int) -> tuple[bytes, bytes, int]:
    """The next `count` lines (fewer at the end of the file), what was read
    beyond them, and how many lines were taken."""
    parts = []
    taken = 0
    while True:
        block = pending or handle.read(1 << 20)
        pending = b""
        if not block:
            break
        newlines = block.count(b"\n")
        if taken + newlines < count:
            parts.append(block)
            taken += newlines
            continue
        cut = -1
        for _ in range(count - taken):
            cut = block.index(b"\n", cut + 1)
        parts.append(block[: cut + 1])
        pending = block[cut + 1 :]
        taken = count
        break
    data = b"".join(parts)
    if data and not data.endswith(b"\n"):
        taken += 1  # the last line, without its newline
    return data, pending, taken


def _clean(values: list[str], columns: list[str]) -> tuple[str | None, list[str | None]]:
    """Empty becomes NULL, text is stripped; a NUL is the row's error (the
    check finds too long a value)."""
    cleaned: list[str | None] = []
    error = None
    for name, value in zip(columns, values, strict=True):
        value = value.strip()
        if "\x00" in value:
            error = error or f"{name}: contains a NUL character"
            value = value.replace("\x00", "")
        cleaned.append(value or None)
    return error, cleaned


def _luhn_sql() -> str:
    """The Luhn check digit of a payload of up to 15 digits (leading zeros
    add nothing), as one expression: no loop per row."""
    terms = []
    for index in range(15):
        digit = f"(p / {10**index} % 10)"
        # Counted from the right, the even places are doubled (digits summed).
        terms.append(f"({digit} * 2 % 10 + {digit} * 2 / 10)" if index % 2 == 0 else digit)
    return f"(10 - ({' + '.join(terms)}) % 10) % 10"


# Dates and times checked in SQL without an exception (no subtransaction per
# row): None when the text is no valid ISO date (or date and time). Shapes
# checked on the text with its digits made 9s: a date's by comparison (a
# regular expression per value costs several times more), only the time
# after a date by one. STABLE as their bodies (a cast to date is), so that
# the planner inlines them rather than calling a function per row.
_FUNCTIONS_SQL = (
    r"""
CREATE OR REPLACE FUNCTION pg_temp.lojal_date(v text) RETURNS date LANGUAGE sql STABLE AS $$
SELECT CASE
    WHEN v IS NULL OR translate(v, '012345678', '999999999') <> '9999-99-99' THEN NULL
    WHEN substr(v, 1, 4)::int < 1 THEN NULL
    WHEN substr(v, 6, 2)::int NOT BETWEEN 1 AND 12 THEN NULL
    WHEN substr(v, 9, 2)::int NOT BETWEEN 1 AND CASE
        WHEN substr(v, 6, 2)::int = 2 THEN 28 + (substr(v, 1, 4)::int % 4 = 0
            AND (substr(v, 1, 4)::int % 100 <> 0 OR substr(v, 1, 4)::int % 400 = 0))::int
        WHEN substr(v, 6, 2)::int IN (4, 6, 9, 11) THEN 30 ELSE 31 END THEN NULL
    ELSE v::date
END $$;
CREATE OR REPLACE FUNCTION pg_temp.lojal_moment(v text, tz text) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
SELECT CASE
    WHEN v IS NULL OR tz IS NULL THEN NULL
    WHEN length(v) = 10 THEN (pg_temp.lojal_date(v) + time '12:00') AT TIME ZONE tz
    WHEN pg_temp.lojal_date(left(v, 10)) IS NULL THEN NULL
    WHEN translate(substr(v, 11), '012345678T+', '999999999 -')
        !~ '^ 99:99(:99(\.9{1,6})?)?(Z|-99(:?99)?)?$' THEN NULL
    WHEN substr(v, 12, 2)::int > 23 OR substr(v, 15, 2)::int > 59 THEN NULL
    WHEN substr(v, 17, 1) = ':' AND substr(v, 18, 2)::int > 59 THEN NULL
    WHEN split_part(translate(substr(v, 11), '+', '-'), '-', 2) <> ''
        AND left(split_part(translate(substr(v, 11), '+', '-'), '-', 2), 2)::int > 23 THEN NULL
    WHEN length(split_part(translate(substr(v, 11), '+:', '-'), '-', 2)) = 4
        AND right(v, 2)::int > 59 THEN NULL
    WHEN right(v, 1) = 'Z' OR strpos(translate(substr(v, 11), '+', '-'), '-') > 0
        THEN v::timestamptz
    ELSE v::timestamp AT TIME ZONE tz
END $$;
CREATE OR REPLACE FUNCTION pg_temp.lojal_luhn(p bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT """
    + _luhn_sql()
    + r""" $$;
"""
)


def _postgres_check() -> None:
    if connection.vendor != "postgresql":
        raise ValidationFailed(
            "Imports need PostgreSQL (COPY and temporary tables); this database is "
            f"{connection.vendor}. Set DATABASE_URL to a PostgreSQL database."
        )


def _execute(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """The statement, timed in the debug log (where an import's time goes);
    its rows, if it returns any."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = list(cursor.fetchall()) if cursor.description else []
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%.3fs %s", time.perf_counter() - started, " ".join(sql.split())[:90])
    return rows


def _raw() -> psycopg.Connection[Any]:
    connection.ensure_connection()
    return connection.connection  # type: ignore[no-any-return]


def _copy_rows(table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    with _raw().cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _copy_plain(table: str, header: list[str], data: bytes) -> int:
    """The lines into the staging table by the server's CSV parser: the
    rows it read."""
    with _raw().cursor() as cursor:
        with cursor.copy(
            f"COPY {table} ({', '.join(header)}) FROM STDIN WITH (FORMAT csv)"
        ) as copy:
            view = memoryview(data)
            for start in range(0, len(view), 1 << 20):
                copy.write(view[start : start + (1 << 20)])
        return cursor.rowcount


def _trim_copied(table: str, columns: list[str]) -> None:
    """The values the server's CSV parser copied, trimmed and empty as NULL
    in place, as the csv path cleans them (only the few rows that change are
    written): the check then reads plain columns, whose statistics give the
    planner true estimates of its joins (on a trimmed expression it guessed
    a few rows and probed the members' index once per row rather than
    hashing them)."""
    # Which rows to write, by their values' first and last characters: a
    # lookup of two code points costs less than trimming every value.
    edges = " OR ".join(
        f"ascii({name}) = ANY({_EDGES_SQL}) OR ascii(right({name}, 1)) = ANY({_EDGES_SQL})"
        for name in columns
    )
    _execute(
        f"UPDATE {table} SET {', '.join(f'{name} = {_trim(name)}' for name in columns)} "
        f"WHERE {edges}"
    )


def _too_long(columns: list[str]) -> str:
    """CASE branches: the first value longer than its column allows."""
    return " ".join(
        f"WHEN length(c.{name}) > {MAX_LENGTHS[name]} "
        f"THEN '{name}: longer than {MAX_LENGTHS[name]} characters'"
        for name in columns
        if name in MAX_LENGTHS
    )


class _Run:
    """What both imports share: the chunks, their transactions, the report."""

    kind: str
    table: str
    key: str
    columns: list[str]
    required: list[str]
    analyzed: tuple[str, ...]
    staging_sql = ""

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
            handle = open(self.path, "rb")
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

    def _all_chunks(self, handle: IO[bytes]) -> None:
        self._setup()
        first = first_chunk = True
        file = _File(
            handle, columns=self.columns, required=self.required, chunk_size=self.chunk_size
        )
        for chunk in file.chunks():
            if not first and self.pause:
                time.sleep(self.pause)  # tests: time to kill a run between chunks
            first = False
            with transaction.atomic():
                # Hash joins of a chunk in memory, not in batches on disk; no
                # JIT, whose compiling of these wide statements costs more
                # than it saves.
                _execute("SET LOCAL work_mem = '64MB'")
                _execute("SET LOCAL jit = off")
                # A merge join sorts the chunk's wide rows; a hash join or an
                # index lookup does not.
                _execute("SET LOCAL enable_mergejoin = off")
                # A chunk's commit need not wait for its WAL to reach the
                # disk: a crash loses at most the last chunks, which running
                # the file again imports (docs/imports.md).
                _execute("SET LOCAL synchronous_commit = off")
                rows = self._load(file, chunk)
                if first_chunk:
                    # Temporary tables have no autovacuum. The joined columns'
                    # statistics of the first chunk serve the others (the row
                    # count the planner reads off the table's size).
                    _execute(f"ANALYZE {self.table} ({', '.join(self.analyzed)})")
                    first_chunk = False
                self._chunk(now=timezone.now())
                self._account()
                committing = time.perf_counter()
            # The deferred foreign key checks run here, a row each.
            logger.debug("%.3fs COMMIT", time.perf_counter() - committing)
            if self.progress is not None:
                self.progress(rows)

    def _load(self, file: _File, chunk: _Plain | _Parsed) -> int:
        """The chunk into the staging table: how many rows."""
        _execute(f"TRUNCATE {self.table}, {self.table}_checked")
        if isinstance(chunk, _Plain):
            _execute("SELECT setval('lojal_import_line', %s, false)", [chunk.first_line])
            try:
                with transaction.atomic():
                    started = time.perf_counter()
                    copied = _copy_plain(self.table, file.header, chunk.data)
                    logger.debug("%.3fs COPY of %s lines", time.perf_counter() - started, copied)
                    if copied != chunk.rows:
                        raise _NotPlain  # a line `\.` ends COPY's data early
            except (psycopg.Error, _NotPlain):
                # Too many or too few fields on a line, a NUL, not UTF-8, a
                # blank line: the csv module's reading says which line and why.
                chunk = file.refused(chunk)
            else:
                _trim_copied(self.table, file.header)
                return copied
        _copy_rows(
            self.table,
            ["line", "pre_error", *self.columns],
            [self._prepare(line, values) for line, values in chunk.rows],
        )
        return len(chunk.rows)

    def _prepare(self, line: int, values: list[str]) -> tuple[Any, ...]:
        if len(values) == 1 and len(self.columns) != 1:
            return (line, values[0], *([None] * len(self.columns)))
        error, cleaned = _clean(values, self.columns)
        return (line, error, *cleaned)

    def _account(self) -> None:
        """The chunk's rows into the result and the report."""
        report_sql = (
            f"SELECT line, {self.key}, member_number, "
            "CASE WHEN error IS NOT NULL THEN 'failed' ELSE status END, error "
            f"FROM {self.table}_checked ORDER BY line"
        )
        if self.report is None:
            # Counts and the first errors only: no row to Python.
            for status, count in _execute(
                f"SELECT CASE WHEN error IS NOT NULL THEN 'failed' ELSE status END, count(*) "
                f"FROM {self.table}_checked GROUP BY 1"
            ):
                self.result.rows += count
                setattr(self.result, status, getattr(self.result, status) + count)
            room = FIRST_ERRORS - len(self.result.first_errors)
            if room > 0:
                for line, error in _execute(
                    f"SELECT line, error FROM {self.table}_checked WHERE error IS NOT NULL "
                    "ORDER BY line LIMIT %s",
                    [room],
                ):
                    self.result.first_errors.append({"line": line, "error": error})
            return
        with _raw().cursor(name="lojal_import_report") as cursor:
            cursor.itersize = 10_000
            cursor.execute(report_sql)
            for line, key, member_number, status, error in cursor:
                self.result.add(status, line, error)
                self.report.writerow([line, key or "", member_number or "", status, error or ""])

    def _setup(self) -> None:
        try:
            with transaction.atomic():
                # The staging tables in memory (the default is 8 MB); only
                # possible before the session's first temporary table.
                _execute("SET temp_buffers = '256MB'")
        except DatabaseError:
            pass
        _execute(_FUNCTIONS_SQL)
        self._drop()
        _execute("CREATE TEMP SEQUENCE lojal_import_line")
        _execute(self.staging_sql)

    def _drop(self) -> None:
        _execute(
            f"DROP TABLE IF EXISTS {self.table}, {self.table}_checked, {self.table}_seen, "
            f"{self.table}_emails, {self.table}_phones"
        )
        _execute("DROP SEQUENCE IF EXISTS lojal_import_line")

    def _chunk(self, *, now: datetime) -> None:
        raise NotImplementedError


class _NotPlain(Exception):
    pass


def _staging(table: str, columns: list[str]) -> str:
    """The chunk as read: text, numbered by line."""
    return (
        f"CREATE TEMP TABLE {table} (line int DEFAULT nextval('lojal_import_line'), "
        f"pre_error text, {', '.join(f'{name} text' for name in columns)});"
    )


# --- members -----------------------------------------------------------------


class _MembersRun(_Run):
    kind = "members"
    table = "lojal_import_members"
    key = "external_id"
    columns = MEMBER_COLUMNS
    analyzed = ("market", "external_id", "email", "phone", "card", "tier")
    required = MEMBER_REQUIRED
    staging_sql = (
        _staging("lojal_import_members", MEMBER_COLUMNS)
        + """
    CREATE TEMP TABLE lojal_import_members_checked (
        line int, external_id text, member_number text, status text, error text,
        new_id bigint, market_id bigint, tz text, email text, phone text, first_name text,
        last_name text, birth_d date, language text, enrolled_ts timestamptz, card text,
        points_n int, expire_d date, tier_id bigint, me boolean, ms boolean, pr boolean
    );
    CREATE TEMP TABLE lojal_import_members_seen (
        market_id bigint, external_id text, line int, PRIMARY KEY (market_id, external_id)
    );
    CREATE TEMP TABLE lojal_import_members_emails (email text);
    CREATE TEMP TABLE lojal_import_members_phones (phone text, market text, e164 text);
    """
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.markets = {m.code: m for m in Market.objects.all()}
        self.base_tier = Tier.objects.order_by("rank").first()
        if self.base_tier is None:
            raise ValidationFailed("The club has no tier yet.")
        self.sequences: dict[str, str] = {}

    def _sequence(self, table: str) -> str:
        if table not in self.sequences:
            self.sequences[table] = str(
                _execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])[0][0]
            )
        return self.sequences[table]

    def _contacts(self) -> None:
        """The emails of another shape than the plain one, and the phones,
        checked in Python once per distinct value: the invalid emails, each
        phone's E.164 form (None: invalid)."""
        t = self.table
        _execute(f"TRUNCATE {t}_emails, {t}_phones")
        bad = []
        for (email,) in _execute(
            f"SELECT DISTINCT email FROM {t} WHERE pre_error IS NULL AND email IS NOT NULL "
            "AND (email !~ %s OR length(email) - position('@' IN email) > 63)",
            [_PLAIN_EMAIL],
        ):
            try:
                validate_email(email)
            except ValidationError:
                bad.append((email,))
        if bad:
            _copy_rows(f"{t}_emails", ["email"], bad)
        phones = []
        for phone, market_code in _execute(
            f"SELECT DISTINCT phone, market FROM {t} WHERE pre_error IS NULL AND phone IS NOT NULL"
        ):
            market = self.markets.get((market_code or "").upper())
            try:
                e164 = normalize_phone(phone, region=market.code if market else None)
            except ValidationFailed:
                e164 = None
            phones.append((phone, market_code, e164))
        if phones:
            _copy_rows(f"{t}_phones", ["phone", "market", "e164"], phones)
        if bad or phones:
            _execute(f"ANALYZE {t}_emails, {t}_phones")

    def _chunk(self, *, now: datetime) -> None:
        t = self.table
        self._contacts()
        days = [
            (market.pk, today_for(market, now), expiry_for(market, today_for(market, now)))
            for market in self.markets.values()
        ]
        consents = " ".join(
            f"WHEN {name} IS NOT NULL AND {short} IS NULL "
            f"THEN '{name}: true or false, not ' || {name}"
            for name, short in zip(CONSENTS, ("me", "ms", "pr"), strict=True)
        )
        # One pass: every check in the order of the contract's rules, the
        # first failing one being the row's error.
        _execute(
            rf"""
        INSERT INTO {t}_checked (line, external_id, member_number, status, error, new_id,
            market_id, tz, email, phone, first_name, last_name, birth_d, language,
            enrolled_ts, card, points_n, expire_d, tier_id, me, ms, pr)
        SELECT line, external_id, coalesce(existing_number,
                   (({MEMBER_NUMBER_BASE} + new_id) * 10 + pg_temp.lojal_luhn(
                       {MEMBER_NUMBER_BASE} + new_id))::text),
               status, error, new_id, market_id, tz, email, e164, first_name, last_name,
               birth_d, coalesce(language, market_language), enrolled_ts, card, points_n,
               coalesce(expire_given, expiry), tier_id, me, ms, pr
        FROM (
            SELECT k.*, CASE WHEN error IS NULL AND existing_id IS NULL
                             THEN nextval('{self._sequence("members_member")}') END AS new_id
            FROM (
                SELECT h.*,
                       CASE WHEN error2 IS NULL AND existing_id IS NULL
                                 AND card_first < line
                            THEN 'card ' || card || ' is given twice in the file'
                            ELSE error2 END AS error,
                       CASE WHEN error2 IS NOT NULL THEN NULL
                            WHEN existing_id IS NOT NULL THEN 'unchanged'
                            WHEN card_first < line THEN NULL
                            ELSE 'created' END AS status
                FROM (
                    SELECT g.*,
                           min(line) FILTER (WHERE error2 IS NULL AND card IS NOT NULL)
                               OVER (PARTITION BY card) AS card_first
                    FROM (
                        SELECT f.*, ex.id AS existing_id, ex.member_number AS existing_number,
                               coalesce(f.error1, CASE WHEN ex.id IS NULL AND f.card IS NOT NULL
                                   AND EXISTS (SELECT 1 FROM members_card mc
                                               WHERE mc.number = f.card)
                                   THEN 'card ' || f.card || ' belongs to another member' END
                               ) AS error2
                        FROM (
                            SELECT e.*, CASE
                                WHEN key_error IS NOT NULL THEN key_error
                                WHEN email IS NULL AND phone IS NULL
                                    THEN 'email or phone is required'
                                WHEN birth_date IS NOT NULL AND birth_d IS NULL
                                    THEN 'birth_date: not a date (YYYY-MM-DD): ' || birth_date
                                WHEN birth_d > %(utc_today)s THEN 'birth_date lies in the future'
                                WHEN enrolled_ts IS NULL
                                    THEN 'enrolled_at: not an ISO date or date and time: '
                                         || enrolled_at
                                WHEN enrolled_ts > %(now)s THEN 'enrolled_at lies in the future'
                                WHEN points_n IS NULL
                                    THEN 'points: not a whole number of 0 or more: ' || points
                                WHEN points_expire_on IS NOT NULL AND expire_given IS NULL
                                    THEN 'points_expire_on: not a date (YYYY-MM-DD): '
                                         || points_expire_on
                                WHEN expire_given < today THEN 'points_expire_on lies in the past'
                                WHEN tier IS NOT NULL AND tier_id IS NULL
                                    THEN 'unknown tier ' || tier
                                {consents}
                                WHEN seen.line IS NOT NULL
                                    THEN 'duplicate external_id ' || e.external_id
                                         || ' in the file (line ' || seen.line || ')'
                                WHEN key_first < e.line
                                    THEN 'duplicate external_id ' || e.external_id
                                         || ' in the file (line ' || key_first || ')'
                            END AS error1
                            FROM (
                                SELECT v.*, min(line) FILTER (WHERE key_error IS NULL)
                                    OVER (PARTITION BY market_id, external_id) AS key_first
                                FROM (
                                    SELECT c.*, m.id AS market_id, m.time_zone AS tz,
                                        m.language AS market_language, d.today, d.expiry,
                                        ph.e164, r.id AS tier_id,
                                        pg_temp.lojal_date(c.birth_date) AS birth_d,
                                        coalesce(pg_temp.lojal_moment(c.enrolled_at, m.time_zone),
                                            CASE WHEN c.enrolled_at IS NULL THEN %(now)s END
                                        ) AS enrolled_ts,
                                        CASE WHEN c.points IS NULL THEN 0
                                             WHEN length(c.points) <= 9 AND ltrim(translate(
                                                 c.points, '012345678', '999999999'), '9') = ''
                                                 THEN c.points::int
                                        END AS points_n,
                                        pg_temp.lojal_date(c.points_expire_on) AS expire_given,
                                        CASE lower(c.marketing_email) WHEN 'true' THEN true
                                            WHEN 'false' THEN false END AS me,
                                        CASE lower(c.marketing_sms) WHEN 'true' THEN true
                                            WHEN 'false' THEN false END AS ms,
                                        CASE lower(c.profiling) WHEN 'true' THEN true
                                            WHEN 'false' THEN false END AS pr,
                                        CASE
                                            WHEN c.pre_error IS NOT NULL THEN c.pre_error
                                            {_too_long(MEMBER_COLUMNS)}
                                            WHEN be.email IS NOT NULL
                                                THEN 'email: not a valid email address'
                                            WHEN ph.phone IS NOT NULL AND ph.e164 IS NULL
                                                THEN 'phone: not a valid phone number'
                                            WHEN c.external_id IS NULL
                                                THEN 'external_id is required'
                                            WHEN c.market IS NULL THEN 'market is required'
                                            WHEN m.id IS NULL THEN 'unknown market ' || c.market
                                        END AS key_error
                                    FROM {t} c
                                    LEFT JOIN club_market m ON m.code = upper(c.market)
                                    LEFT JOIN unnest(%(markets)s::bigint[], %(todays)s::date[],
                                                     %(expiries)s::date[])
                                        AS d(market_id, today, expiry) ON d.market_id = m.id
                                    LEFT JOIN {t}_emails be ON be.email = c.email
                                    LEFT JOIN {t}_phones ph ON ph.phone = c.phone
                                        AND ph.market IS NOT DISTINCT FROM c.market
                                    LEFT JOIN club_tier r ON r.code = lower(c.tier)
                                    OFFSET 0
                                ) v
                            ) e
                            LEFT JOIN {t}_seen seen ON e.key_error IS NULL
                                AND seen.market_id = e.market_id
                                AND seen.external_id = e.external_id
                        ) f
                        LEFT JOIN members_member ex ON f.error1 IS NULL
                            AND ex.market_id = f.market_id AND ex.external_id = f.external_id
                    ) g
                ) h
            ) k
            ORDER BY line
        ) n
        """,
            {
                "now": now,
                "utc_today": now.date(),
                "markets": [d[0] for d in days],
                "todays": [d[1] for d in days],
                "expiries": [d[2] for d in days],
            },
        )
        # The first line of each id, for the chunks to come.
        _execute(
            f"INSERT INTO {t}_seen (market_id, external_id, line) "
            f"SELECT DISTINCT ON (market_id, external_id) market_id, external_id, line "
            f"FROM {t}_checked WHERE market_id IS NOT NULL AND external_id IS NOT NULL "
            "ORDER BY market_id, external_id, line ON CONFLICT DO NOTHING"
        )
        self._insert(now=now)

    def _insert(self, *, now: datetime) -> None:
        t = self.table
        ((planned, created, uncarded, given),) = _execute(
            f"""
            WITH new AS (
                INSERT INTO members_member (
                    id, member_number, market_id, external_id, status, email, phone, first_name,
                    last_name, birth_date, language, channel, enrolled_at, marketing_email,
                    marketing_sms, profiling, consents_updated_at, tier_id, tier_valid_until,
                    updated_at)
                SELECT s.new_id, s.member_number, s.market_id, s.external_id, 'active', s.email,
                       s.phone, coalesce(s.first_name, ''), coalesce(s.last_name, ''),
                       s.birth_d, s.language, 'staff', s.enrolled_ts,
                       coalesce(s.me, false), coalesce(s.ms, false), coalesce(s.pr, false),
                       CASE WHEN coalesce(s.me, s.ms, s.pr) IS NOT NULL THEN %(now)s END,
                       coalesce(s.tier_id, %(base)s),
                       CASE WHEN s.tier_id IS NOT NULL
                            THEN ((%(now)s AT TIME ZONE s.tz)::date + interval '12 months')::date
                       END,
                       %(now)s
                FROM {t}_checked s WHERE s.new_id IS NOT NULL
                ORDER BY s.new_id
                ON CONFLICT (external_id, market_id) WHERE external_id IS NOT NULL DO NOTHING
                RETURNING id, tier_valid_until
            ), created AS MATERIALIZED (
                SELECT s.new_id AS member_id, s.card, s.points_n, s.expire_d, s.tier_id,
                       s.me, s.ms, s.pr, new.tier_valid_until,
                       CASE WHEN s.card IS NULL THEN {_CARD_DRAW_SQL} END AS drawn
                FROM {t}_checked s JOIN new ON new.id = s.new_id
            ), cards AS (
                INSERT INTO members_card (number, member_id, status, issued_at)
                SELECT coalesce(card, {_card_number_sql("drawn")}), member_id, 'active', %(now)s
                FROM created
                ON CONFLICT (number) DO NOTHING
                RETURNING member_id
            ), tiers AS (
                INSERT INTO loyalty_tierchange (member_id, from_tier_id, to_tier_id, cause,
                                                reason, valid_until, changed_at)
                SELECT member_id, %(base)s, tier_id, 'import', %(reason)s, tier_valid_until,
                       %(now)s
                FROM created WHERE tier_id IS NOT NULL
            ), consents AS (
                INSERT INTO members_consentchange (member_id, consent, granted, at, source)
                SELECT member_id, c.consent, c.granted, %(now)s, 'import'
                FROM created CROSS JOIN LATERAL (VALUES ('marketing_email', me),
                    ('marketing_sms', ms), ('profiling', pr)) AS c(consent, granted)
                WHERE c.granted IS NOT NULL
            ), uncarded AS MATERIALIZED (
                SELECT member_id, card FROM created c
                WHERE NOT EXISTS (SELECT FROM cards WHERE cards.member_id = c.member_id)
            )
            -- The members whose card number was taken, from what the insert
            -- returned: read (the anti-join run) only when there are any.
            SELECT planned, created,
                   CASE WHEN carded < created
                        THEN (SELECT array_agg(member_id) FROM uncarded) END,
                   CASE WHEN carded < created
                        THEN (SELECT bool_or(card IS NOT NULL) FROM uncarded) END
            FROM (SELECT (SELECT count(*) FROM {t}_checked WHERE new_id IS NOT NULL) AS planned,
                         (SELECT count(*) FROM created) AS created,
                         (SELECT count(*) FROM cards) AS carded
                  OFFSET 0) AS n
            """,
            {
                "now": now,
                "base": self.base_tier.pk,
                "reason": f"imported by {self.actor.name}",
            },
        )
        if created < planned:
            # A parallel run took some of them meanwhile: theirs now.
            _execute(
                f"UPDATE {t}_checked s SET status = 'unchanged', new_id = NULL, "
                "member_number = m.member_number FROM members_member m "
                "WHERE s.new_id IS NOT NULL AND m.market_id = s.market_id "
                "AND m.external_id = s.external_id AND m.id <> s.new_id"
            )
        if given:
            raise RuntimeError("a given card number was taken during the import")
        if uncarded:
            _cards_again(uncarded, now=now)
        # The opening balances by the ledger's own bulk writer.
        opening = _execute(
            f"SELECT new_id, points_n, expire_d FROM {t}_checked "
            "WHERE status = 'created' AND new_id IS NOT NULL"
        )
        accounts_open_bulk(
            member_ids=[row[0] for row in opening],
            points=[row[1] for row in opening],
            expires_on=[row[2] for row in opening],
            reason="import",
            reference=f"import:{Path(self.path).name}",
            today=now.date(),
            now=now,
        )


def _cards_again(member_ids: list[int], *, now: datetime) -> None:
    """The few members whose drawn card number was taken: drawn again, only
    theirs."""
    for _ in range(5):
        carded = _execute(
            f"INSERT INTO members_card (number, member_id, status, issued_at) "
            f"SELECT {_card_number_sql('drawn')}, id, 'active', %s FROM ("
            f"SELECT id, {_CARD_DRAW_SQL} AS drawn FROM unnest(%s::bigint[]) AS m(id) "
            "OFFSET 0) AS d ON CONFLICT (number) DO NOTHING RETURNING member_id",
            [now, member_ids],
        )
        member_ids = sorted(set(member_ids) - {member_id for (member_id,) in carded})
        if not member_ids:
            return
    raise RuntimeError("could not draw free card numbers")


# A new card number: the prefix, 11 random digits (from the server's strong
# random source, so that numbers cannot be enumerated from one another), the
# Luhn digit.
_CARD_BASE = int(CARD_PREFIX) * 10**11
_CARD_DRAW_SQL = (
    f"{_CARD_BASE} + (('x' || substr(replace(gen_random_uuid()::text, '-', ''), 17, 16))"
    "::bit(64)::bigint & 4611686018427387903) %% 100000000000"
)


def _card_number_sql(drawn: str) -> str:
    """The card number of a drawn payload (a column: drawn once per row)."""
    return f"({drawn} * 10 + pg_temp.lojal_luhn({drawn}))::text"


# --- purchases ---------------------------------------------------------------


class _PurchasesRun(_Run):
    kind = "purchases"
    table = "lojal_import_purchases"
    key = "receipt_id"
    columns = PURCHASE_COLUMNS
    analyzed = ("member_external_id", "member_number", "store_code", "receipt_id")
    required = PURCHASE_REQUIRED
    staging_sql = (
        _staging("lojal_import_purchases", PURCHASE_COLUMNS)
        + """
    CREATE TEMP TABLE lojal_import_purchases_checked (
        line int, receipt_id text, member_number text, status text, error text,
        new_id uuid, store_id bigint, channel text, member_id bigint, occurred_ts timestamptz,
        currency text, total_n numeric(12, 2), category text, excluded jsonb, body_hash text
    );
    """
    )

    def _chunk(self, *, now: datetime) -> None:
        t = self.table
        # One pass: every check in the order of the contract's rules, the
        # first failing one being the row's error.
        _execute(
            rf"""
        INSERT INTO {t}_checked (line, receipt_id, member_number, status, error, new_id,
            store_id, channel, member_id, occurred_ts, currency, total_n, category, excluded,
            body_hash)
        SELECT line, receipt_id, member_number, CASE WHEN error IS NULL THEN 'created' END,
               error, CASE WHEN error IS NULL THEN (%(prefix)s || substr(
                   replace(gen_random_uuid()::text, '-', ''), 13))::uuid END,
               store_id, channel, member_id, occurred_ts, currency, total_n, category, excluded,
               CASE WHEN error IS NULL THEN encode(sha256(convert_to(concat_ws(
                   '|', 'import', member_id, receipt_id, extract(epoch FROM occurred_ts)::text,
                   currency, total_n::text, coalesce(category, '')), 'UTF8')), 'hex') END
        FROM (
                    SELECT v.line, v.receipt_id, v.store_id, v.channel, v.occurred_ts,
                           v.currency, v.total_n, v.category, v.excluded,
                           coalesce(v.member_number,
                                    CASE WHEN v.early_error IS NULL THEN v.x_number END
                           ) AS member_number,
                           coalesce(v.x_id, v.n_id) AS member_id,
                           CASE
                               WHEN early_error IS NOT NULL THEN early_error
                               WHEN member_external_id IS NOT NULL AND x_id IS NULL
                                   THEN 'unknown member_external_id ' || member_external_id
                                        || ' in market ' || market_code
                               WHEN member_number IS NOT NULL AND x_number IS NOT NULL
                                    AND member_number <> x_number
                                   THEN 'member_number ' || member_number
                                        || ' is not member_external_id ' || member_external_id
                               WHEN member_external_id IS NULL AND n_id IS NULL
                                   THEN 'unknown member_number ' || member_number
                               WHEN member_external_id IS NULL AND n_market <> market_id
                                   THEN 'store ' || store_code || ' is not in the member''s market'
                               WHEN occurred_at IS NULL THEN 'occurred_at is required'
                               WHEN occurred_ts IS NULL
                                   THEN 'occurred_at: not an ISO date or date and time: '
                                        || occurred_at
                               WHEN occurred_ts > %(limit)s THEN 'occurred_at lies in the future'
                               WHEN currency IS NULL THEN 'currency is required'
                               WHEN currency <> market_currency
                                   THEN 'currency ' || currency || ' is not the market''s ('
                                        || market_currency || ')'
                               WHEN total IS NULL THEN 'total is required'
                               WHEN total_n IS NULL
                                   THEN 'total: not an amount of 0 or more (at most 2 decimals): '
                                        || total
                           END AS error
                    FROM (
                        SELECT c.*, st.id AS store_id, st.channel, m.id AS market_id,
                               m.code AS market_code, m.currency AS market_currency,
                               m.excluded_categories AS excluded,
                               bx.id AS x_id, bx.member_number AS x_number,
                               -- by number only for the rows without an external id
                               CASE WHEN c.member_external_id IS NULL THEN (
                                   SELECT id FROM members_member
                                   WHERE member_number = c.member_number) END AS n_id,
                               CASE WHEN c.member_external_id IS NULL THEN (
                                   SELECT market_id FROM members_member
                                   WHERE member_number = c.member_number) END AS n_market,
                               pg_temp.lojal_moment(c.occurred_at, m.time_zone) AS occurred_ts,
                               CASE WHEN ltrim(translate(c.total, '012345678', '999999999'),
                                               '9') IN ('', '.9', '.99')
                                         AND length(split_part(c.total, '.', 1)) BETWEEN 1 AND 10
                                    THEN c.total::numeric(12, 2) END AS total_n,
                               CASE
                                   WHEN c.pre_error IS NOT NULL THEN c.pre_error
                                   {_too_long(PURCHASE_COLUMNS)}
                                   WHEN c.store_code IS NULL THEN 'store_code is required'
                                   WHEN c.receipt_id IS NULL THEN 'receipt_id is required'
                                   WHEN c.member_external_id IS NULL AND c.member_number IS NULL
                                       THEN 'member_external_id or member_number is required'
                                   WHEN st.id IS NULL THEN 'unknown store ' || c.store_code
                               END AS early_error
                        FROM {t} c
                        LEFT JOIN club_store st ON st.code = c.store_code
                        LEFT JOIN club_market m ON m.id = st.market_id
                        LEFT JOIN members_member bx ON bx.market_id = st.market_id
                            AND bx.external_id = c.member_external_id

                        OFFSET 0
                    ) v
        ) e
        """,
            {
                "limit": now + timedelta(minutes=5),
                # Ids led by the time (like a UUIDv7): a chunk's ids go to
                # one end of the primary key's index, not all over it.
                "prefix": f"{int(now.timestamp() * 1000):012x}",
            },
        )
        # A receipt twice in the chunk: its first good line is the one to
        # insert, the others are the same receipt again (unchanged with the
        # same body). Few rows, found by one aggregate rather than a sort.
        # Most chunks have none: one aggregate over the staging table's store
        # codes and receipt ids (a store per code) says so in under half that
        # statement's time (the staging table is analyzed, so the planner
        # hashes it; the checked rows are not, and it sorts them).
        ((twice,),) = _execute(
            f"SELECT EXISTS (SELECT FROM {t} GROUP BY store_code, receipt_id HAVING count(*) > 1)"
        )
        if twice:
            _execute(
                f"""
                UPDATE {t}_checked s SET new_id = NULL,
                    status = CASE WHEN s.body_hash = f.body_hash THEN 'unchanged' END,
                    error = CASE WHEN s.body_hash = f.body_hash THEN NULL
                                 ELSE 'duplicate receipt with another body' END
                FROM (SELECT DISTINCT ON (store_id, receipt_id)
                          store_id, receipt_id, line, body_hash
                      FROM {t}_checked WHERE error IS NULL AND (store_id, receipt_id) IN (
                          SELECT store_id, receipt_id FROM {t}_checked WHERE error IS NULL
                          GROUP BY store_id, receipt_id HAVING count(*) > 1)
                      ORDER BY store_id, receipt_id, line) f
                WHERE s.store_id = f.store_id AND s.receipt_id = f.receipt_id AND s.line > f.line
                  AND s.error IS NULL
                """
            )
        ((planned, created),) = _execute(
            f"""
            WITH new AS (
                INSERT INTO loyalty_purchase (
                    id, member_id, store_id, receipt_id, channel, occurred_at, currency, total,
                    qualifying_amount, lines, points_earned, base_points, returned_amount,
                    returned_qualifying_amount, points_reversed, base_points_reversed, body_hash,
                    response, imported, created_at)
                SELECT s.new_id, s.member_id, s.store_id, s.receipt_id, s.channel,
                       s.occurred_ts, s.currency, s.total_n,
                       CASE WHEN s.category IS NOT NULL AND coalesce(s.excluded, '[]') ? s.category
                            THEN 0 ELSE s.total_n END,
                       CASE WHEN s.category IS NULL THEN '[]'::jsonb
                            ELSE jsonb_build_array(jsonb_build_object('sku', '', 'category',
                                 s.category, 'quantity', 1, 'amount', s.total_n::text)) END,
                       0, 0, 0, 0, 0, 0, s.body_hash, '{{"imported": true}}'::jsonb, true, %(now)s
                FROM {t}_checked s WHERE s.new_id IS NOT NULL
                -- In the members' order: the member_id index and the
                -- foreign key checks at the commit walk the members' pages
                -- in order rather than at random.
                ORDER BY s.member_id
                ON CONFLICT (store_id, receipt_id) DO NOTHING
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM {t}_checked WHERE new_id IS NOT NULL),
                   (SELECT count(*) FROM new)
            """,
            {"now": now},
        )
        if created < planned:
            # Receipts there already (an earlier run, a live purchase, a
            # parallel run): unchanged with the same body, else failed.
            _execute(
                f"UPDATE {t}_checked s SET "
                "status = CASE WHEN p.id = s.new_id THEN 'created' "
                "WHEN p.body_hash = s.body_hash THEN 'unchanged' END, "
                "error = CASE WHEN p.id = s.new_id OR p.body_hash = s.body_hash THEN NULL "
                "ELSE 'duplicate receipt with another body' END "
                "FROM loyalty_purchase p WHERE p.store_id = s.store_id "
                "AND p.receipt_id = s.receipt_id AND s.body_hash IS NOT NULL"
            )


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
