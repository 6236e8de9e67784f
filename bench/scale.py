"""`make bench` at scale: the bench database grown to a big club, copied per run.

    python -m bench.scale --members 1000000 --entries-each 10

Prints the URL of a fresh copy of a template database that holds the bench
members (bench/seed.py's, `--members` of them) and a ledger of
`--entries-each` entries per member: the welcome points bench/seed.py
books, then a history written by set-based SQL: four purchases whose lots
were spent, the four redemptions that spent them, and one more purchase
whose lot is still open (on the balance, expiring a year after the
welcome points). 1,000,000 members make 10,000,000 entries and 6,000,000
lots. The template is seeded once (minutes) and reused while its marker
matches; bin/bench then serves the copy with the same two servers and the
same driver as the 100,000-member run, and compares the ratios.

BENCH_DATABASE_URL names the bench database; the template is
<its name>_scale_tpl and the copy <its name>_scale.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import psycopg

from bench.jobs import ROOT, admin_url, template_copy

MARKER = "scale-v1"
HISTORY_REASON = "Bench history"


def log(message: str) -> None:
    print(f"  scale: {message}", file=sys.stderr, flush=True)


def history_sql(entries_each: int) -> list[str]:
    """The history of every bench member, beyond the welcome entry:
    (entries_each - 2) / 2 spent purchases and their redemptions, one open
    purchase. Loaded data, so the foreign-key triggers are off meanwhile
    (session_replication_role): the rows are valid by construction."""
    pairs = max((entries_each - 2) // 2, 0)
    bench = "SELECT id FROM members_member WHERE email LIKE '%@bench.invalid'"
    return [
        "SET session_replication_role = replica",
        f"""INSERT INTO loyalty_ledgerentry (member_id, kind, points, created_at, reference,
                                            expires_on, reason)
            SELECT m.id, CASE WHEN k <= {pairs} THEN 'earn' ELSE 'redeem' END,
                   CASE WHEN k <= {pairs} THEN 200 ELSE -200 END,
                   now() - (({2 * pairs + 1} - k) * interval '30 days'),
                   'bench-history-' || k, DATE '2025-12-31', '{HISTORY_REASON}'
            FROM ({bench}) m CROSS JOIN generate_series(1, {2 * pairs}) k""",
        f"""INSERT INTO loyalty_ledgerentry (member_id, kind, points, created_at, reference,
                                            expires_on, reason)
            SELECT m.id, 'earn', 300, now() - interval '10 days', 'bench-history-open',
                   (SELECT MAX(expires_on) FROM loyalty_lot) + 365, '{HISTORY_REASON}'
            FROM ({bench}) m""",
        f"""INSERT INTO loyalty_lot (member_id, entry_id, points, remaining, available_on,
                                    expires_on, matured)
            SELECT member_id, id, points,
                   CASE WHEN reference = 'bench-history-open' THEN points ELSE 0 END,
                   created_at::date, expires_on, true
            FROM loyalty_ledgerentry WHERE reason = '{HISTORY_REASON}' AND kind = 'earn'""",
        f"""UPDATE loyalty_pointsaccount a SET balance = a.balance + 300
            FROM ({bench}) m WHERE a.member_id = m.id""",
        "SET session_replication_role = origin",
    ]


def template_ensure(base: str, template: str, members: int, entries_each: int) -> None:
    marker = f"{MARKER} {members} {entries_each}"
    admin = admin_url(base, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone()
    if exists:
        with psycopg.connect(admin_url(base, template)) as conn:
            try:
                row = conn.execute("SELECT value FROM bench_meta WHERE key = 'scale'").fetchone()
            except psycopg.Error:
                row = None
        if row and row[0] == marker:
            log(f"template {template} is seeded ({marker}); reusing it")
            return
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{template}" WITH (FORCE)')
    log(f"seeding {template}: {members:,} members, {members * entries_each:,} entries (minutes)")
    started = time.monotonic()
    env = dict(
        os.environ,
        DATABASE_URL=admin_url(base, template),
        DJANGO_SETTINGS_MODULE="config.settings.bench",
    )
    env.setdefault("SECRET_KEY", os.urandom(32).hex())
    scratch = ROOT / ".bench" / "scale-seed"
    subprocess.run(
        [sys.executable, "-m", "bench.seed", "--out", str(scratch), "--members", str(members)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=sys.stderr,
    )
    with psycopg.connect(admin_url(base, template)) as conn:
        for sql in history_sql(entries_each):
            conn.execute(sql)
        conn.execute(
            "INSERT INTO bench_meta VALUES ('scale', %s) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value",
            [marker],
        )
        conn.commit()
    with psycopg.connect(admin_url(base, template), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        entries = conn.execute("SELECT count(*) FROM loyalty_ledgerentry").fetchone()[0]
    log(f"seeded in {time.monotonic() - started:.0f} s ({entries:,} ledger entries)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--entries-each", type=int, default=10)
    args = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lojal_bench")
    name = base.rsplit("/", 1)[1]
    template_ensure(base, f"{name}_scale_tpl", args.members, args.entries_each)
    started = time.monotonic()
    url = template_copy(base, template=f"{name}_scale_tpl", work=f"{name}_scale")
    log(f"copied the template in {time.monotonic() - started:.0f} s")
    print(url)


if __name__ == "__main__":
    main()
