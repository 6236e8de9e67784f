"""`make bench`, the jobs: the points expiry over a million lots, the tier
evaluation over a million members, and the lookup's p99 while the expiry runs.

    python -m bench.jobs --out .bench

A template database is seeded once with set-based SQL (reused while its
marker matches) and copied for each run, so every run meets the same rows:
  - 1,000,000 members in SE, all Silver with a validity that ended the day
    before the evaluation (a third still qualify and renew);
  - 1,000,000 lots over the first 200,000 of them (5 each), expired, and a
    sample of 20,000 lots over 4,000 more for the naive expiry;
  - cards for the first 200,000, for the lookup during the expiry.

Each job runs as `manage.py <job> --as-of ...` in a process of its own:
wall time and that process's peak memory (getrusage of the child). The
naive expiry, an ORM loop per lot, runs on the 20,000-lot sample, so the
rows-per-second ratio holds on a noisy machine. Exit 0 when measured.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TEMPLATE = "lojal_bench_jobs_tpl"
WORK = "lojal_bench_jobs"
MARKER = "jobs-v4"
MEMBERS = 1_000_000
LOT_MEMBERS = 200_000
LOTS_EACH = 5
SAMPLE_MEMBERS = 4_000
EXPIRE_AS_OF = "2026-02-15T12:00:00+00:00"  # the million lots expired on 2026-01-31
NAIVE_AS_OF = "2026-03-15T12:00:00+00:00"  # the sample expired on 2026-02-28
EVALUATE_AS_OF = "2026-06-15T12:00:00+00:00"  # validity ended 2026-06-14
BIRTHDAY_AS_OF = "2026-07-10T12:00:00+00:00"  # a twelfth of the members were born in July

# Targets of the lifecycle and tiers issues, on a 2-core machine.
EXPIRE_SECONDS, EXPIRE_MB, P99_FACTOR = 60.0, 300.0, 2.0
EVALUATE_SECONDS = 120.0
BIRTHDAY_SECONDS = 60.0


def log(message: str) -> None:
    print(f"  jobs: {message}", flush=True)


def admin_url(base: str, db: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + db


def seed_sql(se: int, silver: int) -> list[str]:
    card_base = 8_000_000_000_000_000
    return [
        f"""INSERT INTO members_member (member_number, market_id, status, email, first_name,
              last_name, birth_date, language, channel, enrolled_at, marketing_email,
              marketing_sms, profiling, tier_id, tier_valid_until, updated_at)
            SELECT 'J' || lpad(g::text, 9, '0'), {se}, 'active', 'j' || g || '@bench.test',
                   'Bench', 'Member', DATE '1970-01-01' + (g % 12) * 31 + (g % 28), 'sv', 'store',
                   TIMESTAMPTZ '2024-01-01', false, false, false, {silver}, DATE '2026-06-14', now()
            FROM generate_series(1, {MEMBERS}) g""",
        """INSERT INTO loyalty_pointsaccount (member_id, balance, pending, updated_at)
           SELECT id, 0, 0, now() FROM members_member WHERE member_number LIKE 'J%'""",
        f"""CREATE TEMP TABLE bench_lot_members AS
            SELECT id, row_number() OVER (ORDER BY id) AS n FROM members_member
            WHERE member_number LIKE 'J%' ORDER BY id LIMIT {LOT_MEMBERS + SAMPLE_MEMBERS}""",
        f"""INSERT INTO members_card (number, member_id, status, issued_at)
            SELECT ({card_base} + n)::text, id, 'active', now() FROM bench_lot_members
            WHERE n <= {LOT_MEMBERS}""",
        f"""INSERT INTO loyalty_ledgerentry (member_id, kind, points, created_at, reference,
              expires_on, reason)
            SELECT b.id, 'earn', 10, now(), 'bench-lot',
                   CASE WHEN b.n <= {LOT_MEMBERS} THEN DATE '2026-01-31' ELSE DATE '2026-02-28' END, ''
            FROM bench_lot_members b CROSS JOIN generate_series(1, {LOTS_EACH}) k""",
        """INSERT INTO loyalty_lot (member_id, entry_id, points, remaining, available_on,
              expires_on, matured)
           SELECT member_id, id, 10, 10, DATE '2024-03-01', expires_on, true
           FROM loyalty_ledgerentry WHERE reference = 'bench-lot'""",
        f"""UPDATE loyalty_pointsaccount SET balance = {10 * LOTS_EACH}
            WHERE member_id IN (SELECT id FROM bench_lot_members)""",
        # A third of the members still qualify for Silver: they renew.
        """INSERT INTO loyalty_qualifyingmonth (member_id, month, points)
           SELECT id, DATE '2026-03-01', 6000 FROM members_member
           WHERE member_number LIKE 'J%' AND id % 3 = 0""",
    ]


def template_ensure(
    base_url: str,
    *,
    template: str,
    marker: str,
    what: str,
    seed: Callable[[Any], None],
    say: Callable[[str], None] = log,
) -> None:
    """A template database, migrated, with the demo club and `seed(conn)`'s
    rows, seeded once and reused while its marker matches."""
    admin = admin_url(base_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone()
    if exists:
        with psycopg.connect(admin_url(base_url, template)) as conn:
            try:
                row = conn.execute("SELECT value FROM bench_marker").fetchone()
            except psycopg.Error:
                row = None
        if row and row[0] == marker:
            say(f"template {template} is seeded ({marker}); reusing it")
            return
    say(f"seeding {template}: {what} (minutes, once)")
    started = time.monotonic()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {template}")
        conn.execute(f"CREATE DATABASE {template}")
    env = dict(
        os.environ,
        DATABASE_URL=admin_url(base_url, template),
        DJANGO_SETTINGS_MODULE="config.settings.base",
    )
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [PY, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )
    with psycopg.connect(admin_url(base_url, template)) as conn:
        seed(conn)
        conn.execute("CREATE TABLE bench_marker (value text)")
        conn.execute("INSERT INTO bench_marker VALUES (%s)", [marker])
        conn.commit()
    with psycopg.connect(admin_url(base_url, template), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    say(f"seeded in {time.monotonic() - started:.0f} s")


def template_copy(base_url: str, *, template: str, work: str) -> str:
    """A fresh copy of the template to measure on: the database URL."""
    with psycopg.connect(admin_url(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {work}")
        conn.execute(f"CREATE DATABASE {work} TEMPLATE {template}")
    return admin_url(base_url, work)


def _seed_lots(conn: Any) -> None:
    se = conn.execute("SELECT id FROM club_market WHERE code = 'SE'").fetchone()[0]
    silver = conn.execute("SELECT id FROM club_tier WHERE code = 'silver'").fetchone()[0]
    for sql in seed_sql(se, silver):
        conn.execute(sql)


def finish(process: subprocess.Popen) -> tuple[str, float]:
    """Wait for `process`: its output and its own peak RSS in MB (wait4)."""
    out = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"bench jobs: {process.args} failed:\n{out}")
    return out, usage.ru_maxrss / 1024


def start_job(db_url: str, command: list[str]) -> subprocess.Popen:
    """`command` is a manage.py command, or `-m module ...`."""
    env = dict(os.environ, DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="config.settings.base")
    argv = [PY, *command] if command[0] == "-m" else [PY, "manage.py", *command]
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def run_job(db_url: str, command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB of the job's process, its last line."""
    started = time.monotonic()
    out, peak = finish(start_job(db_url, command))
    return time.monotonic() - started, peak, out.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(db_url: str, port: int) -> subprocess.Popen:
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        DJANGO_SETTINGS_MODULE="config.settings.bench",
        ALLOWED_HOSTS="127.0.0.1",
    )
    env.setdefault("SECRET_KEY", os.urandom(32).hex())
    server = subprocess.Popen(
        [
            PY,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
            "--env",
            "DJANGO_SETTINGS_MODULE=config.settings.bench",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/schema/", timeout=2)
            return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise SystemExit("bench jobs: gunicorn did not come up")


def api_key(db_url: str) -> str:
    env = dict(os.environ, DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="config.settings.base")
    out = subprocess.run(
        [
            PY,
            "manage.py",
            "create_api_key",
            "--name",
            "bench jobs",
            "--scope",
            "members:read",
            "--rate-per-minute",
            "100000000",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def write_cards(db_url: str, path: Path) -> None:
    with psycopg.connect(db_url) as conn, path.open("w") as out:
        for (number,) in conn.execute("SELECT number FROM members_card WHERE number LIKE '8%'"):
            out.write(f"{number} SE-001 SEK\n")


def wrk_lookup(port: int, key: str, cards: Path, seconds: int) -> dict[str, float]:
    env = dict(os.environ, BENCH_CARDS=str(cards), BENCH_API_KEY=key, BENCH_DIR=str(ROOT / "bench"))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c4",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(ROOT / "bench" / "wrk" / "lookup.lua"),
            f"http://127.0.0.1:{port}",
            "--",
            "/api/v1/members/lookup?card=",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(row for row in out.splitlines() if row.startswith("BENCH_JSON "))
    data = json.loads(line[len("BENCH_JSON ") :])
    if data["status"] or data["connect"] or data["read"] or data["timeout"]:
        raise SystemExit(f"bench jobs: the lookup answered errors under load: {data}")
    return data


def lookup_during(
    port: int, key: str, cards: Path, job: subprocess.Popen
) -> list[dict[str, float]]:
    chunks = []
    # poll() would reap the job and lose its rusage: ask the kernel without waiting.
    while os.waitid(os.P_PID, job.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        chunks.append(wrk_lookup(port, key, cards, 5))
    return chunks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / ".bench")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lojal_bench")
    template_ensure(
        base,
        template=TEMPLATE,
        marker=MARKER,
        what=f"{MEMBERS:,} members, {LOT_MEMBERS * LOTS_EACH:,} lots",
        seed=_seed_lots,
    )
    db = template_copy(base, template=TEMPLATE, work=WORK)
    key = api_key(db)
    cards = args.out / "jobs_cards.txt"
    write_cards(db, cards)

    port = free_port()
    server = start_server(db, port)
    try:
        wrk_lookup(port, key, cards, 3)  # warm-up
        idle = wrk_lookup(port, key, cards, 10)
        started = time.monotonic()
        job = start_job(db, ["points_expire", "--as-of", EXPIRE_AS_OF])
        during = lookup_during(port, key, cards, job)
        out, expire_mb = finish(job)
        expire_seconds = time.monotonic() - started
    finally:
        server.terminate()
        server.wait()
    expired = LOT_MEMBERS * LOTS_EACH
    naive_seconds, _, naive_out = run_job(db, ["-m", "bench.naive_expire", "--as-of", NAIVE_AS_OF])
    naive_rows = SAMPLE_MEMBERS * LOTS_EACH
    check = subprocess.run(
        [PY, "manage.py", "check_ledger"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, DATABASE_URL=db, DJANGO_SETTINGS_MODULE="config.settings.base"),
    )
    eval_seconds, eval_mb, eval_out = run_job(db, ["tiers_evaluate", "--as-of", EVALUATE_AS_OF])
    gift_seconds, gift_mb, gift_out = run_job(db, ["birthday_gifts", "--as-of", BIRTHDAY_AS_OF])
    with psycopg.connect(db) as conn:
        gifts = conn.execute("SELECT COUNT(*) FROM rewards_gift").fetchone()[0]
    again_seconds, _, again_out = run_job(db, ["birthday_gifts", "--as-of", BIRTHDAY_AS_OF])

    p99_idle = idle["p99_us"] / 1000
    p99_during = max(chunk["p99_us"] for chunk in during) / 1000 if during else float("nan")
    rate = expired / expire_seconds
    naive_rate = naive_rows / naive_seconds

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    print()
    print("  Jobs (PostgreSQL, one process each; peak memory of that process)")
    print(f"  {'job':<36}{'rows':>11}{'seconds':>10}{'rows/s':>11}{'peak MB':>9}")
    print(
        f"  {'points_expire, set-based':<36}{expired:>11,}{expire_seconds:>10.1f}{rate:>11,.0f}{expire_mb:>9.0f}"
    )
    print(
        f"  {'points_expire, naive ORM loop':<36}{naive_rows:>11,}{naive_seconds:>10.1f}{naive_rate:>11,.0f}{'':>9}"
    )
    print(
        f"  {'tiers_evaluate':<36}{MEMBERS:>11,}{eval_seconds:>10.1f}{MEMBERS / eval_seconds:>11,.0f}{eval_mb:>9.0f}"
    )
    print(
        f"  {'birthday_gifts (scans all members)':<36}{MEMBERS:>11,}{gift_seconds:>10.1f}{MEMBERS / gift_seconds:>11,.0f}{gift_mb:>9.0f}"
    )
    print(f"  birthday gifts given: {gifts:,}; a second run: {again_out} in {again_seconds:.1f} s")
    print(f"  set-based / naive expiry: {rate / naive_rate:.1f}x rows per second")
    slices = sorted(chunk["p99_us"] / 1000 for chunk in during)
    median = slices[len(slices) // 2] if slices else float("nan")
    print(
        f"  lookup p99 idle {p99_idle:.1f} ms; during the expiry, per 5 s slice: median "
        f"{median:.1f} ms ({median / p99_idle:.2f}x), worst {p99_during:.1f} ms "
        f"({p99_during / p99_idle:.2f}x) of {len(slices)} slices"
    )
    print(f"  check_ledger after the expiry: {check.stdout.strip() or check.stderr.strip()}")
    print(f"  {out.strip().splitlines()[-1] if out.strip() else ''}")
    print(f"  {eval_out}")
    print(
        f"  targets: expiry <= {EXPIRE_SECONDS:.0f} s {verdict(expire_seconds <= EXPIRE_SECONDS)}, "
        f"memory < {EXPIRE_MB:.0f} MB {verdict(expire_mb < EXPIRE_MB)}, "
        f"lookup p99 <= {P99_FACTOR:.0f}x idle {verdict(p99_during <= P99_FACTOR * p99_idle)}, "
        f"evaluation <= {EVALUATE_SECONDS:.0f} s {verdict(eval_seconds <= EVALUATE_SECONDS)}, "
        f"birthday gifts <= {BIRTHDAY_SECONDS:.0f} s {verdict(gift_seconds <= BIRTHDAY_SECONDS)}"
    )


if __name__ == "__main__":
    main()
