"""`make bench`, the imports: 1,000,000 members and 5,000,000 purchases
from CSV files into a fresh database, each beside its floor.

    python -m bench.imports [--out .bench] [--members N] [--purchases N]

The files are generated once per size (kept in OUT/imports/). The database
is made afresh (migrated, the demo club seeded); each import runs as
`manage.py import_members|import_purchases FILE` in a process of its own:
rows per second and that process's peak memory (getrusage of the child,
wait4). The floor, measured in the same run on the same server: a bare
`COPY` of the same file into an unindexed table of text columns. The
targets: each import at most 5x its floor, under 300 MB. Exit 0 when
measured, whether or not the targets were met.

A second reference after each import, "the rows written, bare": the very
rows the import wrote, read back from the tables it wrote (members: the
members, cards, points accounts, ledger entries, lots, tier changes and
consent changes of the members it created; purchases: the imported
purchases), each table's rows first copied out in binary to a file
(untimed), then loaded by one binary `COPY` per table into empty tables
made `LIKE` the real ones `INCLUDING ALL` (the same columns, indexes,
checks and defaults; no foreign keys), in one transaction, timed from the
first `COPY` to the `COMMIT`. Printed with the file's rows per second of
that time, its ratio to the floor and the import's ratio to it: what
writing those rows with their indexes costs at the least, beside what
the import spends on reading, checking and the foreign keys. The tables
the import inserted into are checked against the server's statistics
(a table left out, or a count that differs, is logged).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
FACTOR_TARGET, MEMORY_TARGET_MB = 5.0, 300.0
MARKETS = [
    ("SE", "SEK", ["SE-001", "SE-002", "SE-WEB"]),
    ("NO", "NOK", ["NO-001"]),
    ("DK", "DKK", ["DK-001"]),
    ("FI", "EUR", ["FI-001"]),
]
TIERS = ["", "", "", "member", "silver", "gold"]
CATEGORIES = ["tools", "garden", "paint", "kitchen", ""]
# The tables each import inserts into, and which of their rows it wrote:
# the demo club's members come before the import's, whose ids are above
# the last one before it ({last}).
WRITTEN = {
    "members": {
        "members_member": "id > {last}",
        "members_card": "member_id > {last}",
        "loyalty_pointsaccount": "member_id > {last}",
        "loyalty_ledgerentry": "member_id > {last}",
        "loyalty_lot": "member_id > {last}",
        "loyalty_tierchange": "member_id > {last}",
        "members_consentchange": "member_id > {last}",
    },
    "purchases": {"loyalty_purchase": "imported"},
}


def log(message: str) -> None:
    print(f"  imports: {message}", flush=True)


def db_url(base: str, name: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + name


def members_file(path: Path, count: int) -> None:
    rng = random.Random(7)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
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
        )
        for n in range(count):
            market = MARKETS[n % 4][0]
            born = date(1950, 1, 1) + timedelta(days=rng.randrange(20_000))
            writer.writerow(
                [
                    f"X{n}",
                    market,
                    f"old{n}@bench.test",
                    "",
                    "Old",
                    f"Member {n}",
                    born.isoformat(),
                    "",
                    f"20{10 + n % 15}-0{1 + n % 9}-1{n % 10}",
                    "",
                    rng.randrange(0, 5000),
                    "",
                    TIERS[n % 6],
                    "true" if n % 2 else "false",
                    "false",
                    "true" if n % 3 else "",
                ]
            )


def purchases_file(path: Path, count: int, members: int) -> None:
    rng = random.Random(8)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "member_external_id",
                "member_number",
                "store_code",
                "receipt_id",
                "occurred_at",
                "currency",
                "total",
                "category",
            ]
        )
        for n in range(count):
            member = rng.randrange(members)
            _, currency, stores = MARKETS[member % 4]
            day = date(2015, 1, 1) + timedelta(days=rng.randrange(3600))
            occurred = (
                day.isoformat() if n % 2 else f"{day.isoformat()}T{n % 24:02d}:{n % 60:02d}:00Z"
            )
            writer.writerow(
                [
                    f"X{member}",
                    "",
                    stores[n % len(stores)],
                    f"R{n}",
                    occurred,
                    currency,
                    f"{rng.randrange(0, 500_000) / 100:.2f}",
                    CATEGORIES[n % 5],
                ]
            )


def bench_database(base: str) -> str:
    """The bench's own database, named after BENCH_DATABASE_URL's (which
    other benches of the same `make bench` use): `<name>_imports`."""
    return base.rsplit("/", 1)[1].split("?")[0] + "_imports"


def fresh_database(base: str) -> str:
    name = bench_database(base)
    with psycopg.connect(db_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = db_url(base, name)
    env = dict(os.environ, DATABASE_URL=url, DJANGO_SETTINGS_MODULE="config.settings.base")
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [PY, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )
    return url


def floor(url: str, path: Path) -> tuple[float, int]:
    """A bare COPY of the file (header skipped) into an unindexed table of
    text columns: seconds, rows."""
    with open(path, encoding="utf-8") as handle:
        columns = next(csv.reader(handle))
    table = "floor_" + path.stem.split("-")[0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} ({', '.join(f'{c} text' for c in columns)})")
        started = time.monotonic()
        with conn.cursor() as cursor, open(path, "rb") as handle:
            with cursor.copy(f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                while block := handle.read(1 << 20):
                    copy.write(block)
        seconds = time.monotonic() - started
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        conn.execute(f"DROP TABLE {table}")
    return seconds, rows


def inserted(url: str) -> dict[str, int]:
    """Rows inserted so far per table of the database, by the server's
    statistics (a backend's are flushed when it ends)."""
    with psycopg.connect(url, autocommit=True) as conn:
        # The import's backend may still be ending after its client did.
        for _ in range(50):
            others = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            ).fetchone()[0]
            if not others:
                break
            time.sleep(0.1)
        rows = conn.execute(
            "SELECT relname, n_tup_ins FROM pg_stat_user_tables WHERE schemaname = 'public'"
        ).fetchall()
    return dict(rows)


def bare_write(
    url: str, kind: str, folder: Path, *, last: int, before: dict[str, int]
) -> tuple[float, int]:
    """The rows the import wrote, COPY'd in binary into empty tables LIKE
    its own (no foreign keys) in one transaction: seconds from the first
    COPY to the COMMIT (the reading back untimed), rows."""
    tables = WRITTEN[kind]
    grown = {t: n - before.get(t, 0) for t, n in inserted(url).items() if n > before.get(t, 0)}
    for table in sorted(set(grown) - set(tables)):
        log(
            f"import_{kind} also inserted {grown[table]:,} rows into {table}: not in the bare write"
        )
    counts: dict[str, int] = {}
    with (
        psycopg.connect(url, autocommit=True) as conn,
        tempfile.TemporaryDirectory(dir=folder) as scratch,
    ):
        # In the order the import wrote them (its tables' physical order):
        # an index scan would sort them, which makes index inserts cheaper.
        conn.execute("SET enable_indexscan = off")
        conn.execute("SET enable_bitmapscan = off")
        for table, where in tables.items():
            columns = ", ".join(
                name
                for (name,) in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                    [table],
                )
            )
            query = f"SELECT {columns} FROM {table} WHERE {where.format(last=int(last))}"
            with conn.cursor() as cursor, open(Path(scratch) / table, "wb") as out:
                with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
                    for block in copy:
                        out.write(block)
                counts[table] = cursor.rowcount
            if counts[table] != grown.get(table, 0):
                log(
                    f"{table}: {counts[table]:,} rows read back, "
                    f"{grown.get(table, 0):,} inserted by the server's count"
                )
            conn.execute(f"DROP TABLE IF EXISTS bare_{table}")
            conn.execute(f"CREATE TABLE bare_{table} (LIKE {table} INCLUDING ALL)")
        started = time.monotonic()
        with conn.transaction():
            # As the import's chunks commit.
            conn.execute("SET LOCAL synchronous_commit = off")
            for table in tables:
                with conn.cursor() as cursor, open(Path(scratch) / table, "rb") as handle:
                    with cursor.copy(f"COPY bare_{table} FROM STDIN (FORMAT binary)") as copy:
                        while block := handle.read(1 << 20):
                            copy.write(block)
        seconds = time.monotonic() - started
        for table in tables:
            conn.execute(f"DROP TABLE bare_{table}")
    log(
        f"import_{kind}, bare: {seconds:.1f} s for "
        + ", ".join(f"{table} {count:,}" for table, count in counts.items())
    )
    return seconds, sum(counts.values())


def run_import(url: str, kind: str, path: Path) -> tuple[float, float, str]:
    """Wall seconds, the process's peak RSS in MB, its summary line."""
    env = dict(os.environ, DATABASE_URL=url, DJANGO_SETTINGS_MODULE="config.settings.base")
    started = time.monotonic()
    process = subprocess.Popen(
        [PY, "manage.py", f"import_{kind}", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"bench imports: import_{kind} failed ({code}):\n{out}")
    lines = [line for line in out.strip().splitlines() if " rows: " in line]
    return seconds, usage.ru_maxrss / 1024, lines[-1] if lines else out.strip()[-300:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=".bench")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=5_000_000)
    args = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lojal_bench")
    folder = ROOT / args.out / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    members_csv = folder / f"members-{args.members}.csv"
    purchases_csv = folder / f"purchases-{args.purchases}-of-{args.members}.csv"
    for path, make in (
        (members_csv, lambda p: members_file(p, args.members)),
        (purchases_csv, lambda p: purchases_file(p, args.purchases, args.members)),
    ):
        if not path.exists():
            log(f"generating {path.name}")
            make(path.with_suffix(".tmp"))
            path.with_suffix(".tmp").rename(path)
    log(f"a fresh database {bench_database(base)} (migrated, the demo club)")
    url = fresh_database(base)
    results, bare = [], []
    for kind, path in (("members", members_csv), ("purchases", purchases_csv)):
        floor_seconds, rows = floor(url, path)
        with psycopg.connect(url) as conn:
            last = conn.execute("SELECT coalesce(max(id), 0) FROM members_member").fetchone()[0]
        before = inserted(url)
        seconds, peak, summary = run_import(url, kind, path)
        floor_rate, rate = rows / floor_seconds, rows / seconds
        results.append((kind, rows, rate, floor_rate, seconds / floor_seconds, peak))
        log(f"import_{kind}: {summary}")
        bare_seconds, written = bare_write(url, kind, folder, last=last, before=before)
        bare.append(
            (
                kind,
                written,
                rows / bare_seconds,
                bare_seconds / floor_seconds,
                seconds / bare_seconds,
            )
        )
    print()
    print(
        f"  {'import':<10} {'rows':>10} {'rows/s':>10} {'floor rows/s':>13} {'ratio':>7} "
        f"{'peak MB':>8}  target: <= {FACTOR_TARGET:.0f}x floor, < {MEMORY_TARGET_MB:.0f} MB"
    )
    for kind, rows, rate, floor_rate, ratio, peak in results:
        verdict = "ok" if ratio <= FACTOR_TARGET and peak < MEMORY_TARGET_MB else "MISSED"
        print(
            f"  {kind:<10} {rows:>10,} {rate:>10,.0f} {floor_rate:>13,.0f} {ratio:>6.1f}x "
            f"{peak:>8.0f}  {verdict}"
        )
    print()
    print(
        "  the rows written, bare: the rows each import wrote, one binary COPY per table into"
        " empty copies of its tables (indexes, checks; no foreign keys), one transaction"
    )
    print(
        f"  {'import':<10} {'rows written':>12} {'rows/s':>10} {'x floor':>8} "
        f"{'import x bare':>14}  (rows/s: the file's rows)"
    )
    for kind, written, rate, ratio, import_ratio in bare:
        print(f"  {kind:<10} {written:>12,} {rate:>10,.0f} {ratio:>7.1f}x {import_ratio:>13.1f}x")


if __name__ == "__main__":
    main()
