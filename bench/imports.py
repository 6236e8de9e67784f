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
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
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
    results = []
    for kind, path in (("members", members_csv), ("purchases", purchases_csv)):
        floor_seconds, rows = floor(url, path)
        seconds, peak, summary = run_import(url, kind, path)
        floor_rate, rate = rows / floor_seconds, rows / seconds
        results.append((kind, rows, rate, floor_rate, seconds / floor_seconds, peak))
        log(f"import_{kind}: {summary}")
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


if __name__ == "__main__":
    main()
