"""`make bench`, the jobs against their bare floors: the points expiry over a
million lots and the tier evaluation over a million members, each beside
the fewest plain statements that write the same rows, and the lookup's p99
while the expiry runs.

    python -m bench.jobs --out .bench

A template database is seeded once with set-based SQL (reused while its
marker matches) and copied twice for each run (the jobs run on one copy,
their floors on the other), so every run meets the same rows:
  - 1,000,000 members in SE, all Silver with a validity that ended the day
    before the evaluation (a third still qualify and renew);
  - 1,000,000 lots over the first 200,000 of them (5 each), expired, and a
    sample of 20,000 lots over 4,000 more for the naive expiry;
  - cards for the first 200,000, for the lookup during the expiry.
Each copy is migrated and gets a VACUUM ANALYZE before anything is measured
(this server runs without autovacuum); the Postgres settings are printed.

Each job runs as `manage.py <job> --as-of ...` in a process of its own:
wall time and that process's peak memory (getrusage of the child). Each
floor runs the same way (`python -m bench.jobs --floor expire|evaluate`),
in one transaction (EXPIRE_FLOOR_SQL, EVALUATE_FLOOR_SQL). The expiry and
its floor each run while wrk drives the lookup of a server on their copy
(its idle p99 first, then 5-second slices): the same load on both, and the
lookup's p99 per slice against its idle p99. The evaluation and its floor
run alone. The naive expiry, an ORM loop per lot, runs on the 20,000-lot
sample, so the rows-per-second ratio holds on a noisy machine. Exit 0 when
measured.
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
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
# The template, and the copies measured on, are named after the bench
# database (BENCH_DATABASE_URL), so that benches of two checkouts on one
# server do not drop each other's copies: lojal_bench_jobs_tpl by default.
TEMPLATE = "{name}_jobs_tpl"
WORK = "{name}_jobs"
FLOOR = "{name}_jobs_floor"
MARKER = "jobs-v4"
MEMBERS = 1_000_000
LOT_MEMBERS = 200_000
LOTS_EACH = 5
SAMPLE_MEMBERS = 4_000
EXPIRE_AS_OF = "2026-02-15T12:00:00+00:00"  # the million lots expired on 2026-01-31
NAIVE_AS_OF = "2026-03-15T12:00:00+00:00"  # the sample expired on 2026-02-28
EVALUATE_AS_OF = "2026-06-15T12:00:00+00:00"  # validity ended 2026-06-14
BIRTHDAY_AS_OF = "2026-07-10T12:00:00+00:00"  # a twelfth of the members were born in July

# Issue 14's targets, on a 2-core machine: each job at most 2.5 times its bare
# floor (measured in the same run), memory flat, the lookup's p99 during the
# expiry at most twice its idle p99 in every 5-second slice; the birthday
# gifts' target is the journeys issue's.
EXPIRE_FACTOR, PEAK_MB, P99_FACTOR = 2.5, 300.0, 2.0
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


# --- the bare floors: the fewest plain statements writing the same rows --------

# The expiry: one INSERT (a statement of CTEs) of the expire entries, their
# movements and the `points.expired` events, and one UPDATE of the lots and
# the accounts, in one transaction; the same rows as points_expire writes.
EXPIRE_FLOOR_SQL = [
    """
WITH lots AS MATERIALIZED (
    SELECT l.id, l.member_id, l.remaining, l.expires_on, m.member_number,
           nextval(pg_get_serial_sequence('loyalty_ledgerentry', 'id')) AS entry_id
    FROM loyalty_lot l JOIN members_member m ON m.id = l.member_id
    WHERE l.remaining > 0 AND l.expires_on < %(today)s AND m.market_id = %(market)s
), entries AS (
    INSERT INTO loyalty_ledgerentry (id, member_id, kind, points, created_at, reference,
                                     expires_on, reason)
    SELECT entry_id, member_id, 'expire', -remaining, now(), 'lot:' || id, expires_on, ''
    FROM lots
), movements AS (
    INSERT INTO loyalty_lotmovement (lot_id, entry_id, kind, points, created_at)
    SELECT id, entry_id, 'spend', -remaining, now() FROM lots
)
INSERT INTO core_outboxevent (topic, dedupe_key, member_id, payload, created_at)
SELECT 'points.expired', 'points.expired:' || id, member_id,
       json_build_object('member_number', member_number, 'points', remaining,
                         'expires_on', expires_on, 'lot_id', id)::jsonb, now()
FROM lots
""",
    """
WITH emptied AS (
    UPDATE loyalty_lot l SET remaining = 0
    FROM (SELECT l.id, l.member_id, l.remaining, l.matured
          FROM loyalty_lot l JOIN members_member m ON m.id = l.member_id
          WHERE l.remaining > 0 AND l.expires_on < %(today)s AND m.market_id = %(market)s) o
    WHERE l.id = o.id
    RETURNING o.member_id, o.remaining, o.matured
), per_member AS (
    SELECT member_id, SUM(CASE WHEN matured THEN remaining ELSE 0 END) AS balance,
           SUM(CASE WHEN matured THEN 0 ELSE remaining END) AS pending
    FROM emptied GROUP BY member_id
)
UPDATE loyalty_pointsaccount a
SET balance = a.balance - p.balance, pending = a.pending - p.pending, updated_at = now()
FROM per_member p WHERE a.member_id = p.member_id
""",
]

# The evaluation: one statement deciding every member whose validity ended
# (as tiers_evaluate's _EVALUATE_SQL decides a batch), writing the members,
# the history and the `tier.changed` events.
EVALUATE_FLOOR_SQL = [
    """
WITH qualifying AS (
    SELECT member_id, SUM(points) AS points FROM loyalty_qualifyingmonth
    WHERE month >= %(window)s AND month <= %(month)s GROUP BY member_id
), target AS (
    SELECT m.id, m.member_number, m.tier_id AS old_tier, COALESCE(q.points, 0) AS qualifying,
           CASE WHEN m.tier_override_until IS NOT NULL THEN COALESCE(e.rank, 0)
                ELSE GREATEST(COALESCE(e.rank, 0), t.rank - 1) END AS new_rank
    FROM members_member m JOIN club_tier t ON t.id = m.tier_id
    LEFT JOIN qualifying q ON q.member_id = m.id
    LEFT JOIN LATERAL (SELECT MAX(rank) AS rank FROM club_tier
                       WHERE threshold <= COALESCE(q.points, 0)) e ON true
    WHERE m.market_id = %(market)s AND m.tier_valid_until < %(today)s
      AND (m.tier_override_until IS NULL OR m.tier_override_until < %(today)s)
), resolved AS MATERIALIZED (
    SELECT tg.id, tg.member_number, tg.old_tier, nt.id AS new_tier, tg.qualifying,
           CASE WHEN nt.rank = (SELECT MIN(rank) FROM club_tier) THEN NULL
                ELSE %(valid_until)s::date END AS valid_until
    FROM target tg JOIN club_tier nt ON nt.rank = tg.new_rank
), updated AS (
    UPDATE members_member m
    SET tier_id = r.new_tier, tier_valid_until = r.valid_until, tier_override_until = NULL,
        updated_at = now()
    FROM resolved r WHERE m.id = r.id
), history AS (
    INSERT INTO loyalty_tierchange (member_id, from_tier_id, to_tier_id, cause, reason,
                                    qualifying_points, valid_until, changed_at)
    SELECT id, old_tier, new_tier,
           CASE WHEN old_tier = new_tier THEN 'renewal' ELSE 'evaluation' END, '',
           qualifying, valid_until, now()
    FROM resolved
    RETURNING id, member_id, from_tier_id, to_tier_id, valid_until
)
INSERT INTO core_outboxevent (topic, dedupe_key, member_id, payload, created_at)
SELECT 'tier.changed', 'tier.changed:' || h.id, h.member_id,
       json_build_object('member_number', r.member_number, 'from', ft.code, 'to', tt.code,
                         'cause', 'evaluation', 'valid_until', h.valid_until)::jsonb, now()
FROM history h JOIN resolved r ON r.id = h.member_id
JOIN club_tier ft ON ft.id = h.from_tier_id JOIN club_tier tt ON tt.id = h.to_tier_id
WHERE h.from_tier_id <> h.to_tier_id
""",
]


def floor_run(db_url: str, statements: list[str], params: dict[str, Any]) -> list[float]:
    """The statements in one transaction: the wall seconds of each, then of
    the COMMIT (where the deferred foreign-key checks run)."""
    with psycopg.connect(db_url) as conn:
        se = conn.execute("SELECT id FROM club_market WHERE code = 'SE'").fetchone()[0]
        spent = []
        for sql in statements:
            started = time.monotonic()
            conn.execute(sql, {**params, "market": se})
            spent.append(time.monotonic() - started)
        started = time.monotonic()
        conn.commit()
        spent.append(time.monotonic() - started)
        return spent


def pg_settings(db_url: str) -> str:
    names = (
        "server_version",
        "shared_buffers",
        "work_mem",
        "maintenance_work_mem",
        "effective_cache_size",
        "max_wal_size",
        "checkpoint_timeout",
        "wal_buffers",
        "synchronous_commit",
        "fsync",
        "full_page_writes",
        "autovacuum",
        "jit",
    )
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM unnest(%s::text[]) name", [list(names)]
        ).fetchall()
    return " ".join(f"{name}={value}" for name, value in rows)


def prepare_copy(db_url: str) -> None:
    """Migrations newer than the template (cheap when there are none), then
    VACUUM ANALYZE: the server runs without autovacuum, and a copy's
    statistics and visibility map are where the measurement starts."""
    env = dict(os.environ, DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="config.settings.base")
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


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


def start_server(
    db_url: str,
    port: int,
    *,
    app: str = "config.wsgi:application",
    workers: int = 2,
    probe: str = "/health/live",
) -> subprocess.Popen:
    """gunicorn serving `app` (the API, or bench/bare.py's bare app) with the
    bench settings, `workers` sync workers; up when `probe` answers."""
    (ROOT / "var" / "bench-static").mkdir(parents=True, exist_ok=True)
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
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180  # a loaded machine starts Django slowly
    while time.monotonic() < deadline:
        try:
            # the liveness probe (the schema took over 2 s to build on a loaded machine)
            urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=30)
            return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise SystemExit(f"bench: gunicorn ({app}) did not come up on port {port}")


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


def wrk_json(
    *,
    script: str,
    url: str,
    path: str,
    key: str,
    items: Path,
    seconds: float,
    connections: int,
    timeout: str,
    what: str,
) -> dict[str, float]:
    """One wrk run of GET `path` through bench/wrk/`script` (a random line
    of `items` each request), its JSON summary; errors under load end the
    bench."""
    env = dict(os.environ, BENCH_CARDS=str(items), BENCH_API_KEY=key, BENCH_DIR=str(ROOT / "bench"))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds:.0f}s",
            "--timeout",
            timeout,
            "-s",
            str(ROOT / "bench" / "wrk" / script),
            url,
            "--",
            path,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(row for row in out.splitlines() if row.startswith("BENCH_JSON "))
    data = json.loads(line[len("BENCH_JSON ") :])
    if data["status"] or data["connect"] or data["read"] or data["timeout"]:
        raise SystemExit(f"bench: {what} answered errors under load: {data}")
    return data


def wrk_lookup(port: int, key: str, cards: Path, seconds: int) -> dict[str, float]:
    return wrk_json(
        script="lookup.lua",
        url=f"http://127.0.0.1:{port}",
        path="/api/v1/members/lookup?card=",
        key=key,
        items=cards,
        seconds=seconds,
        connections=4,
        timeout="5s",
        what="the lookup",
    )


def lookup_during(
    port: int, key: str, cards: Path, job: subprocess.Popen
) -> list[dict[str, float]]:
    chunks = []
    # poll() would reap the job and lose its rusage: ask the kernel without waiting.
    while os.waitid(os.P_PID, job.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        chunks.append(wrk_lookup(port, key, cards, 5))
    return chunks


@dataclass
class Measured:
    """One run of a job or of its floor: wall seconds, the peak memory of its
    process, its last line, and the lookup's p99 (ms) per 5-second slice
    meanwhile (none when it ran without the lookup)."""

    seconds: float
    peak_mb: float
    out: str
    idle_p99: float = float("nan")
    slices: list[float] = field(default_factory=list)

    def factors(self) -> list[float]:
        return [p99 / self.idle_p99 for p99 in self.slices]


def with_lookup(db: str, command: list[str], out_dir: Path, tag: str) -> Measured:
    """`command` on `db` while wrk drives the lookup of a server on the same
    database (an idle p99 first, then 5-second slices until it ends)."""
    key = api_key(db)
    cards = out_dir / f"jobs_cards_{tag}.txt"
    write_cards(db, cards)
    port = free_port()
    server = start_server(db, port)
    try:
        wrk_lookup(port, key, cards, 3)  # warm-up
        idle = wrk_lookup(port, key, cards, 10)
        started = time.monotonic()
        process = start_job(db, command)
        during = lookup_during(port, key, cards, process)
        out, peak = finish(process)
        seconds = time.monotonic() - started
    finally:
        server.terminate()
        server.wait()
    return Measured(
        seconds=seconds,
        peak_mb=peak,
        out=out.strip().splitlines()[-1] if out.strip() else "",
        idle_p99=idle["p99_us"] / 1000,
        slices=[chunk["p99_us"] / 1000 for chunk in during],
    )


def alone(db: str, command: list[str]) -> Measured:
    seconds, peak, out = run_job(db, command)
    return Measured(seconds=seconds, peak_mb=peak, out=out)


def floor_main(which: str) -> None:
    """python -m bench.jobs --floor expire|evaluate (DATABASE_URL: a copy)."""
    url = os.environ["DATABASE_URL"]
    if which == "expire":
        seconds = floor_run(url, EXPIRE_FLOOR_SQL, {"today": date(2026, 2, 15)})
    else:
        seconds = floor_run(
            url,
            EVALUATE_FLOOR_SQL,
            {
                "today": date(2026, 6, 15),
                "window": date(2025, 7, 1),
                "month": date(2026, 6, 1),
                "valid_until": date(2027, 6, 15),
            },
        )
    parts = " + ".join(f"{part:.1f}" for part in seconds[:-1])
    print(
        f"floor {which}: {sum(seconds):.1f} s in one transaction "
        f"(statements {parts} s, COMMIT {seconds[-1]:.1f} s)"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / ".bench")
    parser.add_argument("--floor", choices=["expire", "evaluate"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        floor_main(args.floor)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    base = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lojal_bench")
    name = base.rsplit("/", 1)[1]
    template = TEMPLATE.format(name=name)
    template_ensure(
        base,
        template=template,
        marker=MARKER,
        what=f"{MEMBERS:,} members, {LOT_MEMBERS * LOTS_EACH:,} lots",
        seed=_seed_lots,
    )
    # Two copies of the same rows: the jobs run on one, their floors on the other.
    db = template_copy(base, template=template, work=WORK.format(name=name))
    floor_db = template_copy(base, template=template, work=FLOOR.format(name=name))
    for url in (db, floor_db):
        prepare_copy(url)
    log(f"two copies of {template}, migrated, VACUUM ANALYZE done")
    settings_line = pg_settings(db)

    log("the expiry's floor (one INSERT, one UPDATE, one transaction), the lookup meanwhile")
    expire_floor = with_lookup(
        floor_db, ["-m", "bench.jobs", "--floor", "expire"], args.out, "floor"
    )
    log(f"{expire_floor.out}; points_expire, the lookup meanwhile")
    expire = with_lookup(db, ["points_expire", "--as-of", EXPIRE_AS_OF], args.out, "job")
    expired = LOT_MEMBERS * LOTS_EACH
    log(f"{expire.out}; the naive expiry on its sample")
    naive_seconds, _, naive_out = run_job(db, ["-m", "bench.naive_expire", "--as-of", NAIVE_AS_OF])
    naive_rows = SAMPLE_MEMBERS * LOTS_EACH
    check = subprocess.run(
        [PY, "manage.py", "check_ledger"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, DATABASE_URL=db, DJANGO_SETTINGS_MODULE="config.settings.base"),
    )
    log("the evaluation's floor, then tiers_evaluate")
    evaluate_floor = alone(floor_db, ["-m", "bench.jobs", "--floor", "evaluate"])
    evaluate = alone(db, ["tiers_evaluate", "--as-of", EVALUATE_AS_OF])
    gift_seconds, gift_mb, gift_out = run_job(db, ["birthday_gifts", "--as-of", BIRTHDAY_AS_OF])
    with psycopg.connect(db) as conn:
        gifts = conn.execute("SELECT COUNT(*) FROM rewards_gift").fetchone()[0]
        changes = conn.execute("SELECT COUNT(*) FROM loyalty_tierchange").fetchone()[0]
    with psycopg.connect(floor_db) as conn:
        floor_changes = conn.execute("SELECT COUNT(*) FROM loyalty_tierchange").fetchone()[0]
    again_seconds, _, again_out = run_job(db, ["birthday_gifts", "--as-of", BIRTHDAY_AS_OF])

    naive_rate = naive_rows / naive_seconds
    expire_ratio = expire.seconds / expire_floor.seconds
    evaluate_ratio = evaluate.seconds / evaluate_floor.seconds
    factors = expire.factors()
    worst = max(factors, default=float("nan"))
    ordered = sorted(factors)
    median = ordered[len(ordered) // 2] if ordered else float("nan")
    floor_factors = expire_floor.factors()

    print()
    print("  Jobs (PostgreSQL, one process each; peak memory of that process)")
    print(f"  Postgres: {settings_line}")
    print("  (copies of one template, migrated, VACUUM ANALYZE before measuring)")
    print(f"  {'job':<40}{'rows':>11}{'seconds':>10}{'rows/s':>11}{'peak MB':>9}")

    def row(title: str, rows: int, seconds: float, peak: float | None) -> None:
        mb = f"{peak:>9.0f}" if peak is not None else f"{'':>9}"
        print(f"  {title:<40}{rows:>11,}{seconds:>10.1f}{rows / seconds:>11,.0f}{mb}")

    row("points_expire floor (2 statements)", expired, expire_floor.seconds, None)
    row("points_expire", expired, expire.seconds, expire.peak_mb)
    row("points_expire, naive ORM loop (sample)", naive_rows, naive_seconds, None)
    row("tiers_evaluate floor (1 statement)", MEMBERS, evaluate_floor.seconds, None)
    row("tiers_evaluate", MEMBERS, evaluate.seconds, evaluate.peak_mb)
    row("birthday_gifts (scans all members)", MEMBERS, gift_seconds, gift_mb)
    print(f"  birthday gifts given: {gifts:,}; a second run: {again_out} in {again_seconds:.1f} s")
    print(
        f"  set-based / naive expiry: {expired / expire.seconds / naive_rate:.1f}x rows per second"
    )
    print(f"  {expire.out}")
    print(f"  {evaluate.out}; tier changes written {changes:,} (the floor: {floor_changes:,})")
    print(f"  check_ledger after the expiry: {check.stdout.strip() or check.stderr.strip()}")
    print(
        f"  lookup p99 idle {expire.idle_p99:.1f} ms; during the expiry, per 5 s slice, "
        f"x idle: {' '.join(f'{f:.1f}' for f in factors)}"
    )
    print(
        f"  (during the floor, idle {expire_floor.idle_p99:.1f} ms, x idle: "
        f"{' '.join(f'{f:.1f}' for f in floor_factors)})"
    )
    print()
    print(
        f"  points_expire / floor          {expire_ratio:6.2f}   target <= {EXPIRE_FACTOR:.1f}   "
        f"{verdict(expire_ratio <= EXPIRE_FACTOR)}"
    )
    print(
        f"  tiers_evaluate / floor         {evaluate_ratio:6.2f}   target <= {EXPIRE_FACTOR:.1f}   "
        f"{verdict(evaluate_ratio <= EXPIRE_FACTOR)}"
    )
    print(
        f"  points_expire peak MB          {expire.peak_mb:6.0f}   target < {PEAK_MB:.0f}   "
        f"{verdict(expire.peak_mb < PEAK_MB)}"
    )
    print(
        f"  tiers_evaluate peak MB         {evaluate.peak_mb:6.0f}   target < {PEAK_MB:.0f}   "
        f"{verdict(evaluate.peak_mb < PEAK_MB)}"
    )
    print(
        f"  lookup p99 during the expiry, worst slice x idle {worst:6.2f}   target <= "
        f"{P99_FACTOR:.1f} in every slice   {verdict(bool(factors) and worst <= P99_FACTOR)}"
        f"   (median {median:.2f}, {sum(f <= P99_FACTOR for f in factors)} of {len(factors)} "
        f"slices within)"
    )
    print(
        f"  birthday_gifts seconds         {gift_seconds:6.1f}   target <= {BIRTHDAY_SECONDS:.0f}   "
        f"{verdict(gift_seconds <= BIRTHDAY_SECONDS)}"
    )


if __name__ == "__main__":
    main()
