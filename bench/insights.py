"""`make bench`, insights: `insights_refresh` over 1,000,000 members and
10,000,000 purchases beside its floor in the same run, `insights_rollup`,
and the insight endpoints under wrk beside the bare lookup.

    python -m bench.insights [--members N] [--purchases N] [--seconds S] [--rounds R]
    python -m bench.insights --endpoints-only   # again, on the copy a run left

A template database is seeded once with set-based SQL (reused while its
marker matches) and copied for the run:
  - the members in SE, all with the profiling consent;
  - the purchases (imported history: they earn nothing) over the two years
    before AS_OF, spread over the members unevenly (a few buy often, many
    seldom, some never), 5 % of them returned whole and 5 % in half;
  - in a step of its own (its own marker, so a template seeded before keeps
    its purchases): a card and a points account per member, a ledger of
    every kind with lots, and NPS answers (extras_sql).

The floor is one bare `GROUP BY` over the same purchases that computes each
member's x, t_x, T, recency, frequency and monetary value into a temporary
table: what the refresh cannot do with less. The refresh runs as
`manage.py insights_refresh --as-of AS_OF --market SE` in a process of its
own, twice (into the empty table, then again: the nightly case): wall time
and that process's peak memory (wait4), and its phases from its log. Then
`insights_rollup` runs (everything, then the news), and gunicorn serves the
copy as bin/bench serves the API: each insight endpoint and the bare lookup
(BASELINE) take turns under wrk; p99 and CPU per request of each. Exit 0
when measured.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from bench.drive import CpuMeter
from bench.jobs import (
    PY,
    ROOT,
    admin_url,
    finish,
    free_port,
    run_job,
    start_job,
    start_server,
    template_copy,
    template_ensure,
    wrk_json,
)

# One template for every bench database (seeding it takes half an hour);
# the copy is named after BENCH_DATABASE_URL's database, so two runs with
# two names do not drop each other's: lojal_bench_insights by default.
TEMPLATE = "lojal_bench_insights_tpl"
WORK = "{name}_insights"
MARKER = "insights-v1"
AS_OF = "2026-06-30"
# Targets of the insights issue, on a 2-core machine.
FLOOR_FACTOR, MEMORY_MB = 3.0, 500.0
CONNECTIONS = 4
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))


def api_key(db_url: str, *, scopes: list[str]) -> str:
    env = dict(os.environ, DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="config.settings.base")
    argv = [PY, "manage.py", "create_api_key", "--name", "bench insights"]
    for scope in scopes:
        argv += ["--scope", scope]
    out = subprocess.run(
        [*argv, "--rate-per-minute", "100000000"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def phases_of(out: str) -> str:
    """The refresh's own timing of its phases, from its log."""
    for line in out.splitlines():
        if "phases:" in line:
            return line[line.index("phases:") :].split('"')[0].split("[")[0].strip()
    return "(no phases logged)"


def migrate(db_url: str) -> None:
    env = dict(os.environ, DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="config.settings.base")
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)


def log(message: str) -> None:
    print(f"  insights: {message}", flush=True)


def seed_sql(se: int, web: int, members: int, purchases: int) -> list[str]:
    chunk = 1_000_000
    statements = [
        f"""INSERT INTO members_member (member_number, market_id, status, email, first_name,
              last_name, language, channel, enrolled_at, marketing_email, marketing_sms,
              profiling, tier_id, updated_at)
            SELECT 'I' || lpad(g::text, 9, '0'), {se}, 'active', 'i' || g || '@bench.test',
                   'Bench', 'Member', 'sv', 'store', TIMESTAMPTZ '2024-06-01', false, false, true,
                   (SELECT id FROM club_tier ORDER BY rank LIMIT 1), now()
            FROM generate_series(1, {members}) g""",
        "SELECT setseed(0.42)",
    ]
    for start in range(1, purchases + 1, chunk):
        end = min(start + chunk - 1, purchases)
        # random()^2 skews the buyers: the low member numbers buy often.
        statements.append(
            f"""INSERT INTO loyalty_purchase (id, member_id, store_id, receipt_id, channel,
                  occurred_at, currency, total, qualifying_amount, lines, points_earned,
                  base_points, returned_amount, returned_qualifying_amount, points_reversed,
                  base_points_reversed, body_hash, response, imported, created_at)
                SELECT gen_random_uuid(), b.first + floor({members} * random() ^ 2)::int,
                       {web}, 'B' || g, 'online',
                       TIMESTAMPTZ '2024-07-01 08:00+00' + (random() * 729) * INTERVAL '1 day',
                       'SEK', t.total, t.total, '[]'::jsonb, 0, 0,
                       CASE WHEN g % 20 = 0 THEN t.total WHEN g % 20 = 1 THEN round(t.total / 2, 2)
                            ELSE 0 END,
                       0, 0, 0, '', '{{}}'::jsonb, true, now()
                FROM generate_series({start}, {end}) g
                CROSS JOIN (SELECT min(id) AS first FROM members_member
                            WHERE member_number LIKE 'I%') b
                CROSS JOIN LATERAL (SELECT round((50 + random() * 950)::numeric, 2) AS total
                                    WHERE g > 0) t"""
        )
    return statements


# What the insight endpoints' bench reads besides the purchases, added to
# the template in a step of its own (its own marker: a template seeded
# before keeps its 10,000,000 purchases): a card and a points account per
# member, a ledger of every kind over the two years before the run (its
# earned entries with lots, some spent), and NPS answers over the last year.
EXTRAS_MARKER = "insights-extras-v1"
CARD_BASE = 7_000_000_000_000_000


def extras_sql(se: int, web: int, members: int) -> list[str]:
    first = "(SELECT min(id) FROM members_member WHERE member_number LIKE 'I%')"
    # A skewed member: the low member numbers are the busy ones.
    member = f"{first} + floor({members} * random() ^ 2)::int"
    when = "TIMESTAMPTZ '2024-12-01 08:00+00' + random() * (now() - INTERVAL '1 day' - TIMESTAMPTZ '2024-12-01 08:00+00')"
    kinds = [  # kind, entries, points (SQL)
        ("earn", 2_000_000, "(10 + floor(random() * 990))::int"),
        ("bonus", 200_000, "(10 + floor(random() * 190))::int"),
        ("adjust", 50_000, "(floor(random() * 400) - 200)::int"),
        ("return", 100_000, "-(1 + floor(random() * 300))::int"),
        ("redeem", 400_000, "-(100 + floor(random() * 900))::int"),
        ("redeem_cancel", 20_000, "(100 + floor(random() * 900))::int"),
        ("expire", 200_000, "-(1 + floor(random() * 500))::int"),
    ]
    statements = [
        "SELECT setseed(0.17)",
        f"""INSERT INTO members_card (number, member_id, status, issued_at)
            SELECT ({CARD_BASE} + id)::text, id, 'active', now() FROM members_member
            WHERE member_number LIKE 'I%'""",
    ]
    for kind, per_million, points in kinds:
        count = max(1, per_million * members // 1_000_000)
        statements.append(
            f"""INSERT INTO loyalty_ledgerentry (member_id, kind, points, created_at, reference,
                  expires_on, reason)
                SELECT {member}, '{kind}', {points}, w.at, 'bench-insights',
                       CASE WHEN '{kind}' IN ('earn', 'bonus') THEN w.at::date + 730 END, ''
                FROM generate_series(1, {count}) g
                CROSS JOIN LATERAL (SELECT {when} AS at WHERE g > 0) w"""
        )
    statements += [
        """INSERT INTO loyalty_lot (member_id, entry_id, points, remaining, available_on,
              expires_on, matured)
           SELECT member_id, id, points, points, created_at::date + 30, expires_on,
                  created_at::date + 30 <= current_date
           FROM loyalty_ledgerentry WHERE kind IN ('earn', 'bonus')
             AND reference = 'bench-insights'""",
        # A fifth of the lots half spent: a movement each (the ledger's
        # redeem entries are not tied to them: the bench needs the sums).
        """INSERT INTO loyalty_lotmovement (lot_id, entry_id, kind, points, created_at)
           SELECT l.id, NULL, 'spend', -(l.points / 2), e.created_at + INTERVAL '40 days'
           FROM loyalty_lot l JOIN loyalty_ledgerentry e ON e.id = l.entry_id
           WHERE l.id % 5 = 0 AND e.reference = 'bench-insights'
             AND e.created_at + INTERVAL '40 days' < now()""",
        """UPDATE loyalty_lot l SET remaining = l.points + mv.points
           FROM (SELECT lot_id, SUM(points) AS points FROM loyalty_lotmovement
                 GROUP BY lot_id) mv WHERE mv.lot_id = l.id""",
        """INSERT INTO loyalty_pointsaccount (member_id, balance, pending, updated_at)
           SELECT m.id, COALESCE(e.points, 0) - COALESCE(p.points, 0), COALESCE(p.points, 0), now()
           FROM members_member m
           LEFT JOIN (SELECT member_id, SUM(points) AS points FROM loyalty_ledgerentry
                      GROUP BY member_id) e ON e.member_id = m.id
           LEFT JOIN (SELECT member_id, SUM(remaining) AS points FROM loyalty_lot
                      WHERE NOT matured GROUP BY member_id) p ON p.member_id = m.id
           WHERE m.member_number LIKE 'I%'""",
        f"""INSERT INTO insights_npsresponse (member_id, market_id, touchpoint, store_id, score,
              comment, occurred_at, created_at)
            SELECT {member}, {se},
                   (ARRAY['store', 'online', 'support', 'app', 'email'])[1 + g % 5],
                   CASE WHEN g % 5 = 1 THEN {web} END, floor(random() * 11)::int, '',
                   now() - INTERVAL '1 day' - random() * INTERVAL '365 days', now()
            FROM generate_series(1, {max(1, members // 5)}) g""",
    ]
    return statements


FLOOR_SQL = """
CREATE TEMP TABLE floor_scores AS
SELECT member_id, count(*) - 1 AS x, (max(day) - min(day)) / 7.0 AS t_x,
       (%(as_of)s::date - min(day)) / 7.0 AS t_cal, %(as_of)s::date - max(day) AS recency,
       sum(receipts) FILTER (WHERE day > %(as_of)s::date - 365) AS frequency,
       sum(value) FILTER (WHERE day > %(as_of)s::date - 365) AS monetary
FROM (SELECT member_id, (occurred_at AT TIME ZONE 'Europe/Stockholm')::date AS day,
             count(*) AS receipts, sum(total - returned_amount) AS value
      FROM loyalty_purchase
      WHERE occurred_at < %(end)s AND NOT (total > 0 AND returned_amount >= total)
      GROUP BY 1, 2) d
GROUP BY member_id
"""


def _seeder(members: int, purchases: int) -> Callable[[Any], None]:
    """The template's rows: the members and their purchases, by SQL."""

    def seed(conn: Any) -> None:
        se = conn.execute("SELECT id FROM club_market WHERE code = 'SE'").fetchone()[0]
        web = conn.execute("SELECT id FROM club_store WHERE code = 'SE-WEB'").fetchone()[0]
        for n, sql in enumerate(seed_sql(se, web, members, purchases)):
            conn.execute(sql)
            if n > 1:
                log(f"  {min((n - 1) * 1_000_000, purchases):,} purchases")

    return seed


def template_extend(base: str, members: int) -> None:
    """The extras (extras_sql) added to the seeded template once."""
    url = admin_url(base, TEMPLATE)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_extras (value text)")
        row = conn.execute("SELECT value FROM bench_extras").fetchone()
        if row and row[0] == EXTRAS_MARKER:
            log(f"template {TEMPLATE} has its extras ({EXTRAS_MARKER}); reusing it")
            return
        if row:
            raise SystemExit(f"bench insights: {TEMPLATE} has extras {row[0]}: drop it to reseed")
        log("adding cards, accounts, a ledger and NPS answers to the template (minutes, once)")
        started = time.monotonic()
        se = conn.execute("SELECT id FROM club_market WHERE code = 'SE'").fetchone()[0]
        web = conn.execute("SELECT id FROM club_store WHERE code = 'SE-WEB'").fetchone()[0]
        for sql in extras_sql(se, web, members):
            conn.execute(sql)
        conn.execute("INSERT INTO bench_extras VALUES (%s)", [EXTRAS_MARKER])
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    log(f"extras added in {time.monotonic() - started:.0f} s")


# The insight endpoints, driven by wrk beside the bare lookup of the speed
# bench: bench/bare.py's GET /lookup?card= (one statement, no middleware, no
# DRF) under the same gunicorn settings on a port of its own.
BASELINE = "/lookup?card={}"
P99_FACTOR = 3.0


def endpoints(today: date) -> list[tuple[str, str]]:
    year_ago = today - timedelta(days=365)
    month = f"{today.year:04d}-{today.month:02d}"
    return [
        ("segments", "/api/v1/insights/segments?market=SE"),
        ("model", "/api/v1/insights/model?market=SE"),
        ("member insights", "/api/v1/members/{}/insights"),
        ("nps, 12 months", f"/api/v1/insights/nps?market=SE&from={year_ago}&to={today}"),
        ("retention", f"/api/v1/insights/retention?market=SE&from=2024-01&to={month}"),
        ("liability", "/api/v1/insights/liability?market=SE"),
    ]


def wrk_path(base: str, path: str, key: str, items: Path, seconds: float) -> dict[str, float]:
    """One wrk run of GET `path` (a "{}" in it: a random line of `items`)."""
    url, path = (path, "") if path.startswith("http") else (base, path)
    if not path:  # a whole URL: wrk takes the server, the script the rest
        split = urllib.parse.urlsplit(url)
        url = f"{split.scheme}://{split.netloc}"
        path = split.path + (f"?{split.query}" if split.query else "")
    return wrk_json(
        script="paths.lua",
        url=url,
        path=path,
        key=key,
        items=items,
        seconds=seconds,
        connections=CONNECTIONS,
        timeout="10s",
        what=path,
    )


def run_rollup(db: str) -> tuple[float, float, str]:
    return run_job(db, ["insights_rollup"])


def drive(db: str, today: date, seconds: float, rounds: int) -> list[tuple[str, list, list]]:
    """Each endpoint and the baseline in turns, `rounds` times: per case its
    p99s (ms) and its CPU per request (ms: gunicorn's workers and the
    database's backends)."""
    key = api_key(db, scopes=["insights:read", "members:read"])
    work = ROOT / ".bench"
    work.mkdir(exist_ok=True)
    cards, numbers = work / "insights_cards.txt", work / "insights_members.txt"
    with psycopg.connect(db) as conn, cards.open("w") as c, numbers.open("w") as n:
        rows = conn.execute(
            "SELECT c.number, m.member_number FROM members_card c "
            "JOIN members_member m ON m.id = c.member_id WHERE m.member_number LIKE 'I%%' "
            "ORDER BY m.id LIMIT 200000"
        ).fetchall()
        for card, number in rows:
            c.write(f"{card} SE-WEB SEK\n")
            n.write(f"{number} SE-WEB SEK\n")
    port, bare_port = free_port(), free_port()
    server = start_server(db, port, workers=WORKERS)
    bare = start_server(
        db,
        bare_port,
        app="bench.bare:application",
        workers=WORKERS,
        probe=BASELINE.format(rows[0][0]),
    )
    base = f"http://127.0.0.1:{port}"
    baseline = f"http://127.0.0.1:{bare_port}{BASELINE}"
    cases = [("baseline: bare lookup", baseline), *endpoints(today)]
    figures: dict[str, tuple[list, list]] = {name: ([], []) for name, _ in cases}
    try:
        for name, path in cases:  # each answers 200 before the load
            sample = (path if path.startswith("http") else base + path).replace(
                "{}", rows[0][0] if "card=" in path else rows[0][1]
            )
            request = urllib.request.Request(sample, headers={"Authorization": f"Api-Key {key}"})
            with urllib.request.urlopen(request, timeout=600) as answer:
                assert answer.status == 200, (name, answer.status)
            wrk_path(base, path, key, cards if "card=" in path else numbers, 2)  # warm-up
        for _ in range(rounds):
            for name, path in cases:
                meter = CpuMeter({server.pid, bare.pid}, db)
                meter.start()
                data = wrk_path(base, path, key, cards if "card=" in path else numbers, seconds)
                cpu = meter.stop()
                figures[name][0].append(data["p99_us"] / 1000)
                figures[name][1].append(1000 * (cpu.app + cpu.db) / max(1, data["requests"]))
    finally:
        for process in (server, bare):
            process.terminate()
            process.wait()
    return [(name, *figures[name]) for name, _ in cases]


def report_endpoints(results: list[tuple[str, list, list]], args: argparse.Namespace) -> None:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    load = os.getloadavg()
    print()
    print(
        f"  Insight endpoints under wrk (1 thread, {CONNECTIONS} connections, gunicorn {WORKERS} sync "
        f"workers, {args.rounds} x {args.seconds:.0f} s slices in turns; median of the slices)"
    )
    print(f"  {'case':<24}{'p99 ms':>9}{'x base':>8}{'CPU ms/req':>12}  target")
    base_p99 = median(results[0][1])
    for name, p99s, cpus in results:
        p99 = median(p99s)
        if name.startswith("baseline"):
            print(f"  {name:<24}{p99:>9.1f}{'':>8}{median(cpus):>12.2f}")
            continue
        ok = p99 <= P99_FACTOR * base_p99
        print(
            f"  {name:<24}{p99:>9.1f}{p99 / base_p99:>8.2f}{median(cpus):>12.2f}"
            f"  <= {P99_FACTOR:.0f}x {verdict(ok)}"
        )
    print(f"  load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (2 cores)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="each wrk slice")
    parser.add_argument("--rounds", type=int, default=3, help="slices per case, in turns")
    parser.add_argument("--skip-refresh", action="store_true", help="only the endpoints")
    parser.add_argument(
        "--endpoints-only",
        action="store_true",
        help="drive the endpoints on the copy a previous run left (refreshed, rolled up)",
    )
    args = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lojal_bench")
    work = WORK.format(name=base.rsplit("/", 1)[1].split("?")[0])
    if args.endpoints_only:
        today = datetime.now(ZoneInfo("Europe/Stockholm")).date()
        report_endpoints(drive(admin_url(base, work), today, args.seconds, args.rounds), args)
        return
    template_ensure(
        base,
        template=TEMPLATE,
        marker=f"{MARKER}-{args.members}-{args.purchases}",
        what=f"{args.members:,} members, {args.purchases:,} purchases",
        seed=_seeder(args.members, args.purchases),
        say=log,
    )
    template_extend(base, args.members)
    db = template_copy(base, template=TEMPLATE, work=work)
    started = time.monotonic()
    migrate(db)  # the template was migrated when it was seeded
    log(f"copy migrated in {time.monotonic() - started:.0f} s")
    end = "2026-07-01T00:00:00+02:00"  # the end of AS_OF in Stockholm

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    if not args.skip_refresh:
        # Warm the cache the same way for both: one read of the purchases.
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM loyalty_purchase")
            started = time.monotonic()
            conn.execute(FLOOR_SQL, {"as_of": AS_OF, "end": end})
            floor_seconds = time.monotonic() - started
            floor_rows = conn.execute("SELECT count(*) FROM floor_scores").fetchone()[0]

        started = time.monotonic()
        out, peak_mb = finish(
            start_job(db, ["insights_refresh", "--as-of", AS_OF, "--market", "SE"])
        )
        seconds = time.monotonic() - started
        with psycopg.connect(db) as conn:
            scored, segmented, alive = conn.execute(
                "SELECT count(*), count(segment), count(p_alive) FROM insights_memberscore"
            ).fetchone()
            model = conn.execute(
                "SELECT purchase_model, spend_model FROM insights_fittedmodel"
            ).fetchone()
        again_started = time.monotonic()
        again_out, again_mb = finish(
            start_job(db, ["insights_refresh", "--as-of", AS_OF, "--market", "SE"])
        )
        again = time.monotonic() - again_started

        print()
        print(f"  Insights ({args.members:,} members, {args.purchases:,} purchases, PostgreSQL)")
        print(f"  {'run':<44}{'members':>11}{'seconds':>10}{'peak MB':>9}")
        print(
            f"  {'floor: one bare GROUP BY into a temp table':<44}{floor_rows:>11,}"
            f"{floor_seconds:>10.1f}"
        )
        print(
            f"  {'insights_refresh --market SE, first':<44}{scored:>11,}{seconds:>10.1f}"
            f"{peak_mb:>9.0f}"
        )
        print(
            f"  {'insights_refresh --market SE, again':<44}{scored:>11,}{again:>10.1f}"
            f"{again_mb:>9.0f}"
        )
        print(f"  {out.strip().splitlines()[-1] if out.strip() else ''}")
        for run, text in (("first", out), ("again", again_out)):
            print(f"  {run}: {phases_of(text)}")
        print(f"  in a segment: {segmented:,}; with p_alive: {alive:,}")
        print(f"  models: {model[0]}; {model[1]}")
        print(
            f"  targets: refresh <= {FLOOR_FACTOR:.0f}x the floor: first "
            f"{seconds / floor_seconds:.2f}x {verdict(seconds <= FLOOR_FACTOR * floor_seconds)}, "
            f"again {again / floor_seconds:.2f}x "
            f"{verdict(again <= FLOOR_FACTOR * floor_seconds)}; memory < {MEMORY_MB:.0f} MB "
            f"{verdict(max(peak_mb, again_mb) < MEMORY_MB)}"
        )
    else:
        # The endpoints read what a refresh stored.
        finish(start_job(db, ["insights_refresh", "--as-of", AS_OF, "--market", "SE"]))

    first_seconds, first_mb, first_out = run_rollup(db)
    with psycopg.connect(db) as conn:  # news after the first rollup, for the second
        conn.execute(
            "INSERT INTO loyalty_ledgerentry (member_id, kind, points, created_at, reference, "
            "reason) SELECT id, 'adjust', 1, now(), 'bench-news', '' FROM members_member "
            "WHERE member_number LIKE 'I%%' ORDER BY id LIMIT 10000"
        )
    next_seconds, next_mb, next_out = run_rollup(db)
    with psycopg.connect(db) as conn:
        sizes = conn.execute("SELECT count(*) FROM insights_cohortmonth").fetchone()[0]
    today = datetime.now(ZoneInfo("Europe/Stockholm")).date()
    results = drive(db, today, args.seconds, args.rounds)
    print()
    print("  Rollup (insights_rollup: the ledger's sums, the cohorts' counts)")
    print(f"  {'run':<44}{'seconds':>10}{'peak MB':>9}")
    print(f"  {'first: everything':<44}{first_seconds:>10.1f}{first_mb:>9.0f}   {first_out}")
    print(f"  {'next: 10,000 new entries':<44}{next_seconds:>10.1f}{next_mb:>9.0f}   {next_out}")
    print(f"  cohort-month rows: {sizes:,}")
    report_endpoints(results, args)


if __name__ == "__main__":
    main()
