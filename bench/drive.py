"""`make bench`, step two: drive the running servers with wrk and print the figures.

    python -m bench.drive --url http://127.0.0.1:PORT --bare-url http://127.0.0.1:PORT2 \
        --out .bench [--server-pid PID] [--bare-pid PID2] [--label L] [--compare FILE]

Four cases, in two pairs, each case against its bare counterpart, with the
same wrk threads and connections, on the same cards and members:

    bare read   GET  <bare>/lookup?card=              (bench/bare.py: no middleware,
                                                        no DRF, one SQL statement)
    lookup      GET  /api/v1/members/lookup?card=      (the API)
    bare write  POST <bare>/write                      (one statement: the account
                                                        row touched, a receipt inserted)
    purchase    POST /api/v1/purchases                 (the API, a receipt each)

The bare app (bench/bare.py) is a server of its own, under the same gunicorn
settings (workers, worker class, backlog) as the API's, on its own port:
what the API costs above it is what the project's layers cost.

Each case gets a warm-up, then its measured seconds in slices taken in turns
with its bare counterpart (A B, B A, ...), so that whatever else the machine
does falls on both alike; wrk's figures are summed and its latency quantiles
merged over the slices. Then the two reads once more at one connection, the
latency of a request that does not queue. Alongside, the CPU time per
request of the servers' workers, the database's backends, Redis and wrk,
and the share of the CPUs other processes took (on a shared machine, the
CPU per request is the steadier figure).

Before the load, requests of each kind are checked by hand: the API answers
200/201 with the bench key and 401 without, and the bare read answers the
very same JSON as the lookup. During the load wrk counts every answer that
is not 2xx/3xx and every socket error; any of them fails the run.

The ratios are written to <out>/ratios.json; with --compare FILE
(another run's, e.g. at 100,000 members) they are also set against those.

Exit status: 0 when the figures were measured (whether or not they meet the
targets, this is a measurement), 1 when the harness could not measure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

LOOKUP_PATH = "/api/v1/members/lookup?card="
BARE_READ_PATH = "/lookup?card="
PURCHASE_PATH = "/api/v1/purchases"
BARE_WRITE_PATH = "/write"

# Issue 14's targets, on a 2-core machine, against the bare app.
LOOKUP_SHARE = 0.65  # lookup req/s over the bare read's
LOOKUP_P99_FACTOR = 1.5  # lookup p99 over the bare read's p99, at most
PURCHASE_SHARE = 0.45  # purchase req/s over the bare write's
SCALE_TOLERANCE = 0.10  # the same ratios at 1,000,000 members, within 10 %


class HarnessError(Exception):
    """The bench could not measure (as opposed to: it measured a miss)."""


@dataclass
class Result:
    """One case, summed over its slices."""

    case: str
    requests: int = 0
    seconds: float = 0.0
    non_2xx: int = 0
    socket_errors: int = 0
    max_us: float = 0.0
    # (latency in microseconds, weight in requests): 1000 quantiles per slice
    points: list[tuple[float, float]] = field(default_factory=list)
    cpu: CpuUse | None = None

    def add(self, raw: dict[str, float], quantiles: list[float], cpu: CpuUse) -> None:
        requests = int(raw["requests"])
        self.requests += requests
        self.seconds += raw["duration_us"] / 1e6
        self.non_2xx += int(raw["status"])
        self.socket_errors += int(raw["connect"] + raw["read"] + raw["write"] + raw["timeout"])
        self.max_us = max(self.max_us, raw["max_us"])
        if quantiles:
            self.points += [(value, requests / len(quantiles)) for value in quantiles]
        self.cpu = cpu if self.cpu is None else self.cpu + cpu

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, percent: float) -> float:
        """From the slices' quantiles merged, weighted by their requests."""
        points = sorted(self.points)
        total = sum(weight for _, weight in points)
        if not total:
            return 0.0
        seen = 0.0
        for value, weight in points:
            seen += weight
            if seen >= total * percent / 100 - 1e-9:
                return value / 1000
        return points[-1][0] / 1000

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p90_ms(self) -> float:
        return self.percentile_ms(90)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    @property
    def max_ms(self) -> float:
        return self.max_us / 1000

    def per_request_ms(self, seconds: float) -> float:
        return seconds * 1000 / self.requests if self.requests else 0.0


# --- where the CPU went: ours (server, database, wrk) and everyone else's -----------

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuUse:
    """CPU seconds over one measured run."""

    wall: float
    app: float  # the gunicorn workers
    db: float  # the Postgres backends serving the bench database
    svc: float  # Redis and Postgres's own processes (shared with any other user)
    wrk: float  # the load generator
    busy: float  # the whole machine, steal excluded
    steal: float

    @property
    def other(self) -> float:
        return max(0.0, self.busy - self.app - self.db - self.svc - self.wrk)

    def __add__(self, more: CpuUse) -> CpuUse:
        return CpuUse(
            **{f.name: getattr(self, f.name) + getattr(more, f.name) for f in fields(self)}
        )


def _machine() -> tuple[float, float]:
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def _process_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / TICK  # utime + stime


# The shared services the bench leans on besides the database backends:
# Redis (the throttle) and Postgres's own processes (WAL writer, checkpointer,
# background writer, autovacuum), which work for every database on the server.
_PG_HELPERS = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum",
    "logical replication",
    "stats collector",
    "archiver",
)


def _scan(server_pids: set[int]) -> tuple[list[int], list[int]]:
    """The servers' workers, and the shared services' processes."""
    workers, services = [], []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
            comm, ppid = head.split("(", 1)[1], int(tail.split()[1])
            if ppid in server_pids:
                workers.append(int(entry))
            elif comm.startswith("redis-server"):
                services.append(int(entry))
            elif comm == "postgres":
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    title = f.read().decode(errors="replace")
                if any(helper in title for helper in _PG_HELPERS):
                    services.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return workers, services


class CpuMeter:
    """The CPU time of the server's workers and of the database's backends
    (found in pg_stat_activity) over a run. A thread polls them, so that a
    backend that ends mid-run (Django reconnects every CONN_MAX_AGE seconds)
    still counts up to its last poll, and one that starts counts from zero."""

    POLL = 0.25

    def __init__(self, server_pids: set[int], database_url: str | None) -> None:
        # both servers' workers: the one not driven meanwhile idles (its
        # heartbeat costs microseconds per second)
        self.server_pids = server_pids
        self.conn = None
        if database_url:
            try:
                import psycopg

                self.conn = psycopg.connect(database_url, autocommit=True)
            except Exception as exc:  # the other figures stand without it
                print(f"  (no database CPU figures: {exc})", file=sys.stderr)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _db_pids(self) -> list[int]:
        if self.conn is None:
            return []
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
        return [pid for (pid,) in rows]

    def _poll(self, first: bool) -> None:
        workers, services = _scan(self.server_pids)
        groups = {"app": workers, "db": self._db_pids(), "svc": services}
        for group, pids in groups.items():
            for pid in pids:
                cpu = _process_cpu(pid)
                if pid not in self._first[group]:
                    self._first[group][pid] = cpu if first else 0.0
                self._last[group][pid] = max(cpu, self._last[group].get(pid, 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self.POLL):
            self._poll(first=False)

    def start(self) -> None:
        self._first: dict[str, dict[int, float]] = {"app": {}, "db": {}, "svc": {}}
        self._last: dict[str, dict[int, float]] = {"app": {}, "db": {}, "svc": {}}
        self._poll(first=True)
        self._t0 = time.monotonic()
        self._busy0, self._steal0 = _machine()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> CpuUse:
        busy, steal = _machine()
        wall = time.monotonic() - self._t0
        self._stop.set()
        self._thread.join()
        self._poll(first=False)

        def used(group: str) -> float:
            return sum(
                last - self._first[group].get(pid, 0.0) for pid, last in self._last[group].items()
            )

        return CpuUse(
            wall=wall,
            app=used("app"),
            db=used("db"),
            svc=used("svc"),
            wrk=0.0,
            busy=busy - self._busy0,
            steal=steal - self._steal0,
        )


# --- plain HTTP, for the checks before the load ---------------------------------


def http(
    url: str, *, method: str = "GET", body: bytes | None = None, key: str | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if key:
        request.add_header("Authorization", f"Api-Key {key}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is an answer to report, not follow
        return None


urllib.request.install_opener(urllib.request.build_opener(_NoRedirect))


def wait_ready(
    base: str, path: str, card: str, server_pid: int | None, timeout: float, status: int = 200
) -> None:
    """Until `path` answers `status` (the API without a key: 401)."""
    wanted = status
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server_pid is not None and not _alive(server_pid):
            raise HarnessError("the server exited while starting; see the gunicorn log")
        try:
            status, _ = http(base + path + card)
            if status == wanted:
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise HarnessError(f"the server did not answer within {timeout:.0f}s ({last})")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def purchase_body(card: str, store: str, currency: str, receipt: str) -> bytes:
    from datetime import datetime

    now = datetime.now(UTC).isoformat(timespec="seconds")
    return json.dumps(
        {
            "member": {"card": card},
            "store_code": store,
            "receipt_id": receipt,
            "channel": "store",
            "occurred_at": now,
            "currency": currency,
            "total": "120.00",
            "lines": [{"sku": "BENCH-1", "category": "bench", "quantity": 1, "amount": "120.00"}],
        }
    ).encode()


def preflight(
    base: str, bare: str, key: str, members: list[tuple[str, str, str]], run: str
) -> None:
    """Requests of each kind, by hand: the right status, and the bare read
    answers exactly what the lookup answers (a member of each market)."""
    middle = len(members) // 2
    for card, _, _ in members[middle : middle + 4]:
        status, body = http(base + LOOKUP_PATH + card, key=key)
        if status != 200:
            raise HarnessError(f"lookup answered {status}, not 200: {body[:300]!r}")
        lookup = json.loads(body)
        status, body = http(bare + BARE_READ_PATH + card)
        if status != 200:
            raise HarnessError(f"bare read answered {status}, not 200: {body[:300]!r}")
        baseline = json.loads(body)
        if baseline != lookup:
            raise HarnessError(
                "the bare read does not answer the lookup's JSON:\n"
                f"  lookup:    {json.dumps(lookup, sort_keys=True)}\n"
                f"  bare read: {json.dumps(baseline, sort_keys=True)}"
            )
    card, store, currency = members[middle]
    status, body = http(base + LOOKUP_PATH + card)
    if status != 401:
        raise HarnessError(f"lookup without a key answered {status}, not 401")
    status, body = http(
        base + PURCHASE_PATH,
        method="POST",
        key=key,
        body=purchase_body(card, store, currency, f"{run}-check"),
    )
    if status != 201:
        raise HarnessError(f"purchase answered {status}, not 201: {body[:300]!r}")
    status, body = http(
        bare + BARE_WRITE_PATH,
        method="POST",
        body=purchase_body(card, store, currency, f"{run}-check"),
    )
    if status != 201:
        raise HarnessError(f"bare write answered {status}, not 201: {body[:300]!r}")


# --- wrk ---------------------------------------------------------------------------


def wrk(
    base: str,
    script: str,
    args: list[str],
    *,
    threads: int,
    connections: int,
    seconds: int,
    env: dict[str, str],
) -> tuple[dict[str, float], list[float], float]:
    """wrk's figures (from the script's done()), its latency quantiles in
    microseconds (0.1 % to 99.9 % by 0.1, and the maximum), and the CPU
    seconds wrk used."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(BENCH_DIR / "wrk" / script),
        base,
        "--",
        *args,
    ]
    with tempfile.NamedTemporaryFile("r", prefix="bench-quantiles-", suffix=".txt") as quantiles:
        env = {**env, "BENCH_QUANTILES": quantiles.name}
        cpu_before = _children_cpu()
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=seconds + 180)
            except subprocess.TimeoutExpired:
                process.kill()
                raise HarnessError("wrk did not finish") from None
            except BaseException:  # stopped (SIGTERM from bin/bench): take wrk along
                process.kill()
                raise
        cpu = _children_cpu() - cpu_before  # wrk is the only child reaped meanwhile
        values = [float(line.split()[1]) for line in quantiles.read().splitlines() if line]
    if process.returncode != 0:
        raise HarnessError(f"wrk failed ({process.returncode}): {stderr.strip() or stdout}")
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON ")), values, cpu
    raise HarnessError(f"no figures in wrk's output:\n{stdout}\n{stderr}")


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Case:
    name: str
    base: str  # the server's URL: the API's or the bare app's
    script: str
    path: str
    receipts: str | None = None  # a run id, for scripts that make receipts

    def args(self, tag: str) -> list[str]:
        return [self.path] if self.receipts is None else [self.path, f"{self.receipts}{tag}"]


def run_side_by_side(
    cases: list[Case],
    *,
    threads: int,
    connections: int,
    warmup: int,
    duration: int,
    slices: int,
    env: dict[str, str],
    meter: CpuMeter,
    server_pids: set[int],
) -> dict[str, Result]:
    """A warm-up of each case, then `duration` seconds of each in `slices`
    slices, taking turns (A B, B A, A B, ...): whatever else the machine is
    doing meanwhile falls on both sides alike."""
    slice_seconds = max(1, duration // slices)
    names = " and ".join(case.name for case in cases)
    print(
        f"  {names}: "
        + (f"{warmup}s warm-up each, " if warmup else "")
        + f"{slices} x {slice_seconds}s each, taking turns ...",
        flush=True,
    )
    same = {"threads": threads, "connections": connections, "env": env}
    if warmup:
        for case in cases:
            wrk(case.base, case.script, case.args("w"), seconds=warmup, **same)
    results = {case.name: Result(case=case.name) for case in cases}
    for number in range(slices):
        for case in cases if number % 2 == 0 else cases[::-1]:
            meter.start()
            try:
                raw, quantiles, wrk_cpu = wrk(
                    case.base, case.script, case.args(str(number)), seconds=slice_seconds, **same
                )
            finally:
                cpu = meter.stop()
            cpu.wrk = wrk_cpu  # wrk is timed by its own rusage
            results[case.name].add(raw, quantiles, cpu)
            if any(not _alive(pid) for pid in server_pids):
                raise HarnessError("a server died during the run; see the gunicorn logs")
    return results


# --- the report ----------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def ratios(results: dict[str, Result]) -> dict[str, float]:
    """The figures the targets are about, against the bare app."""
    lookup, read = results["lookup"], results["bare read"]
    purchase, write = results["purchase"], results["bare write"]
    return {
        "lookup_share": lookup.rps / read.rps if read.rps else 0.0,
        "lookup_p99_factor": lookup.p99_ms / read.p99_ms if read.p99_ms else 0.0,
        "purchase_share": purchase.rps / write.rps if write.rps else 0.0,
    }


def report(
    results: dict[str, Result],
    light: dict[str, Result],
    *,
    label: str,
    workers: str,
    threads: int,
    connections: int,
    duration: int,
    slices: int,
    durability: str,
    compare: dict | None,
) -> list[str]:
    cpus = os.cpu_count() or 1
    lines = [
        "",
        f"Lojal bench ({label}): gunicorn {workers} sync workers each for the API and the bare "
        f"app, wrk -t{threads} -c{connections}, {duration}s measured per case ({slices} slices, "
        f"in turns with its bare counterpart), {cpus} CPUs",
        f"Postgres: {durability}",
        "",
        f"  {'case':<16} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7} {'requests':>8} {'non-2xx':>7} {'sockerr':>7}"
        f" | {'cpu ms/req: app':>15} {'db':>5} {'svc':>5} {'wrk':>5} | {'others':>6} {'steal':>5}",
    ]
    for r in results.values():
        line = (
            f"  {r.case:<16} {r.rps:>8.1f} {r.p50_ms:>7.2f} {r.p90_ms:>7.2f} {r.p99_ms:>7.2f} "
            f"{r.max_ms:>7.1f} {r.requests:>8} {r.non_2xx:>7} {r.socket_errors:>7}"
        )
        if r.cpu is not None:
            c = r.cpu
            line += (
                f" | {r.per_request_ms(c.app):>15.2f} {r.per_request_ms(c.db):>5.2f} "
                f"{r.per_request_ms(c.svc):>5.2f} {r.per_request_ms(c.wrk):>5.2f} | "
                f"{c.other / (c.wall * cpus):>6.0%} "
                f"{c.steal / (c.wall * cpus):>5.0%}"
            )
        lines.append(line)
    lines += [
        "  (cpu ms/req: CPU time per request of the gunicorn workers, of the bench database's",
        "   backends, of Redis and Postgres's own processes, of wrk; others: share of all CPUs",
        "   that other processes took meanwhile; steal: share taken by the hypervisor)",
    ]
    got = ratios(results)
    lines += [
        "",
        f"  lookup / bare read          {got['lookup_share']:8.2f}   target >= {LOOKUP_SHARE:.2f}   "
        f"{verdict(got['lookup_share'] >= LOOKUP_SHARE)}",
        f"  lookup p99 / bare read p99  {got['lookup_p99_factor']:8.2f}   "
        f"target <= {LOOKUP_P99_FACTOR:.2f}   "
        f"{verdict(got['lookup_p99_factor'] <= LOOKUP_P99_FACTOR)}"
        f"   ({results['lookup'].p99_ms:.2f} vs {results['bare read'].p99_ms:.2f} ms)",
        f"  purchase / bare write       {got['purchase_share']:8.2f}   "
        f"target >= {PURCHASE_SHARE:.2f}   {verdict(got['purchase_share'] >= PURCHASE_SHARE)}",
    ]
    if compare:
        lines += [
            "",
            f"  Flat as the club grows: these ratios against {compare['label']}'s "
            f"(target: within {SCALE_TOLERANCE:.0%} of them)",
        ]
        for name, title in (
            ("lookup_share", "lookup / bare read"),
            ("lookup_p99_factor", "lookup p99 / bare p99"),
            ("purchase_share", "purchase / bare write"),
        ):
            then = compare["ratios"][name]
            change = got[name] / then - 1 if then else float("inf")
            lines.append(
                f"    {title:<24} {got[name]:6.2f} vs {then:6.2f}   {change:+7.1%}   "
                f"{verdict(abs(change) <= SCALE_TOLERANCE)}"
            )
    if light:
        lines += ["", "  At one connection (wrk -t1 -c1, nothing queues):"]
        for r in light.values():
            lines.append(
                f"    {r.case:<18} {r.rps:>7.1f} req/s   p50 {r.p50_ms:6.2f} ms   "
                f"p99 {r.p99_ms:6.2f} ms   non-2xx {r.non_2xx}"
            )
    if all(r.cpu is not None for r in results.values()):

        def server_ms(r: Result) -> float:
            return r.per_request_ms(r.cpu.app + r.cpu.db)

        lookup, read = results["lookup"], results["bare read"]
        purchase, write = results["purchase"], results["bare write"]
        lines += [
            "",
            "  By server CPU per request (app + db; steadier than req/s on a busy machine):",
            f"    lookup / bare read        {server_ms(read) / server_ms(lookup):5.2f}"
            f"   ({server_ms(lookup):.2f} vs {server_ms(read):.2f} ms)",
            f"    purchase / bare write     {server_ms(write) / server_ms(purchase):5.2f}"
            f"   ({server_ms(purchase):.2f} vs {server_ms(write):.2f} ms)",
        ]
        others = max(r.cpu.other / (r.cpu.wall * cpus) for r in results.values())
        if others > 0.10:
            lines += [
                "",
                f"  NOTE: other processes took up to {others:.0%} of the CPUs during "
                f"a case: these figures are noisy; run again on a quiet machine.",
            ]
    lines.append("")
    return lines


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the API: http://127.0.0.1:PORT")
    parser.add_argument("--bare-url", required=True, help="bench/bare.py: http://127.0.0.1:PORT")
    parser.add_argument("--out", type=Path, required=True, help="what bench.seed wrote")
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--bare-pid", type=int)
    parser.add_argument("--label", default="100,000 members", help="names this run's figures")
    parser.add_argument("--compare", type=Path, help="another run's ratios file, to compare to")
    parser.add_argument("--workers", default="?")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--duration", type=int, default=12, help="measured seconds per case")
    parser.add_argument(
        "--slices", type=int, default=4, help="the measured seconds of two cases compared, in turns"
    )
    parser.add_argument(
        "--light-duration",
        type=int,
        default=6,
        help="seconds of each read at one connection; 0 skips them",
    )
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print("bench: wrk is not installed", file=sys.stderr)
        return 1
    base = args.url.rstrip("/")
    bare = args.bare_url.rstrip("/")
    key = (args.out / "api_key").read_text().strip()
    cards_file = args.out / "cards.txt"
    members = [tuple(line.split()) for line in cards_file.read_text().splitlines() if line]
    durability_file = args.out / "durability"
    durability = durability_file.read_text().strip() if durability_file.exists() else "?"
    compare = json.loads(args.compare.read_text()) if args.compare else None
    run = uuid.uuid4().hex[:12]
    env = {
        **os.environ,
        "BENCH_CARDS": str(cards_file.resolve()),
        "BENCH_API_KEY": key,
        "BENCH_DIR": str(BENCH_DIR),
    }
    server_pids = {pid for pid in (args.server_pid, args.bare_pid) if pid is not None}
    meter = CpuMeter(server_pids, os.environ.get("DATABASE_URL"))
    same = {
        "threads": args.threads,
        "connections": args.connections,
        "warmup": args.warmup,
        "duration": args.duration,
        "slices": args.slices,
        "env": env,
        "meter": meter,
        "server_pids": server_pids,
    }
    try:
        wait_ready(base, LOOKUP_PATH, members[0][0], args.server_pid, timeout=60, status=401)
        wait_ready(bare, BARE_READ_PATH, members[0][0], args.bare_pid, timeout=60)
        preflight(base, bare, key, members, run)
        print(
            "  checks: lookup 200 and the same JSON as the bare read, 401 without a key, "
            "purchase 201, bare write 201",
            flush=True,
        )
        results = run_side_by_side(
            [
                Case("bare read", bare, "lookup.lua", BARE_READ_PATH),
                Case("lookup", base, "lookup.lua", LOOKUP_PATH),
            ],
            **same,
        )
        results |= run_side_by_side(
            [
                Case("bare write", bare, "purchase.lua", BARE_WRITE_PATH, receipts=f"{run}b"),
                Case("purchase", base, "purchase.lua", PURCHASE_PATH, receipts=f"{run}p"),
            ],
            **same,
        )
        # The same reads at one connection: the time a request takes when it
        # does not queue behind others (the runs above saturate the server).
        light = {}
        if args.light_duration:
            light = run_side_by_side(
                [
                    Case("bare read @1", bare, "lookup.lua", BARE_READ_PATH),
                    Case("lookup @1", base, "lookup.lua", LOOKUP_PATH),
                ],
                **{
                    **same,
                    "threads": 1,
                    "connections": 1,
                    "warmup": 0,
                    "duration": args.light_duration,
                    "slices": 2,
                },
            )
    except HarnessError as exc:
        print(f"\nbench: FAILED: {exc}", file=sys.stderr)
        return 1

    lines = report(
        results,
        light,
        label=args.label,
        workers=args.workers,
        threads=args.threads,
        connections=args.connections,
        duration=args.duration,
        slices=args.slices,
        durability=durability,
        compare=compare,
    )
    print("\n".join(lines), flush=True)
    (args.out / "last_report.txt").write_text("\n".join(lines) + "\n")
    (args.out / "ratios.json").write_text(
        json.dumps({"label": args.label, "ratios": ratios(results)}) + "\n"
    )
    failed = {
        r.case: (r.non_2xx, r.socket_errors)
        for r in [*results.values(), *light.values()]
        if r.non_2xx or r.socket_errors
    }
    if failed:
        detail = ", ".join(
            f"{case}: {bad} non-2xx, {sock} socket errors" for case, (bad, sock) in failed.items()
        )
        print(
            f"bench: FAILED: requests went wrong during the load ({detail}); "
            f"the figures above do not count",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
