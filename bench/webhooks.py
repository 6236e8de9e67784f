"""`make bench`, webhook delivery: outbox events to a local receiver through
the real path (commit → on-commit dispatch over Redis → a Celery worker's
fan-out → the webhook's sender → a signed POST), beside its floor.

    python -m bench.webhooks [--events 100000] [--paced 20000] [--workers 4]

- the floor: one process, a bare loop of signed POSTs of the same bodies
  to the same receiver (requests, one kept-alive connection);
- throughput: EVENTS events committed as fast as one process can (100 per
  transaction, one INSERT each), delivered by a Celery worker: events per
  second from the first commit to the last arrival;
- delay: PACED events committed at half the measured delivery rate (the
  receiver and the senders keep up): the p50/p99 delay from each commit to
  its arrival at the receiver.

A fresh database (lojal_bench_webhooks on the bench's server), Redis
(BENCH_REDIS_URL, db 15 by default) as broker and cache, production
settings (config.settings.bench) with WEBHOOKS_ALLOW_PRIVATE=true (the
receiver is on 127.0.0.1). Exit 0 when measured, whether or not the
targets were met (at least half the floor's rate; p99 under 2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import Process, Queue
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB = "lojal_bench_webhooks"
RATE_TARGET, P99_TARGET = 0.5, 2.0


def log(message: str) -> None:
    print(f"  webhooks: {message}", flush=True)


def environment() -> dict[str, str]:
    base = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lojal_bench")
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=os.environ.get("BENCH_SETTINGS", "config.settings.bench"),
        DATABASE_URL=base.rsplit("/", 1)[0] + "/" + DB,
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
        ALLOWED_HOSTS="127.0.0.1",
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48),
        WEBHOOKS_ALLOW_PRIVATE="true",
        LOG_LEVEL="WARNING",
    )
    return env


# --- the receiver: its own process, answers 200 at once, notes each arrival ----------


def receiver_main(port_out: Queue) -> None:
    arrivals: dict[str, float] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            now = time.time()
            msg_id = self.headers.get("webhook-id", "")
            with lock:
                arrivals.setdefault(msg_id, now)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            with lock:
                if self.path == "/count":
                    body = json.dumps(len(arrivals)).encode()
                elif self.path == "/dump":
                    body = json.dumps(arrivals).encode()
                else:  # /reset
                    arrivals.clear()
                    body = b"0"
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.put(server.server_address[1])
    server.serve_forever()


# --- the run ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--paced", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    env = environment()
    os.environ.update(env)

    import psycopg

    admin_url = env["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    py = sys.executable
    subprocess.run([py, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)

    ports: Queue = Queue()
    receiver = Process(target=receiver_main, args=(ports,), daemon=True)
    receiver.start()
    port = ports.get(timeout=30)
    base_url = f"http://127.0.0.1:{port}"
    log(f"receiver on {base_url} (a process of its own)")

    import django
    import django.core.cache

    django.setup()
    import requests

    from backoffice.demo import demo_club_seed
    from core.models import OutboxEvent
    from core.services import api_client_create
    from integrations.models import Webhook
    from integrations.webhooks import secret_new, sign
    from members.models import Member

    demo_club_seed()
    OutboxEvent.objects.update(delivered_at=django.utils.timezone.now())
    client, _ = api_client_create(name="bench crm", scopes=["webhooks:manage"])
    secret = secret_new()
    Webhook.objects.create(client=client, url=f"{base_url}/crm", events=["*"], secret=secret)
    member_ids = list(Member.objects.values_list("id", flat=True))
    numbers = dict(Member.objects.values_list("id", "member_number"))

    def payload(i: int, member_id: int) -> dict[str, Any]:
        return {
            "member_number": numbers[member_id],
            "purchase_id": f"00000000-0000-4000-8000-{i:012d}",
            "receipt_id": f"R-{i}",
            "store_code": "SE-001",
            "points": 49,
            "status": "pending",
            "available_on": "2026-12-30",
        }

    # --- the floor: a bare loop of signed POSTs of the same bodies, one process ---
    session = requests.Session()
    session.get(f"{base_url}/reset")
    bodies = [
        json.dumps(
            {
                "id": f"floor_{i}",
                "type": "points.earned",
                "created_at": "2026-11-30T01:20:00.000000+00:00",
                "data": payload(i, member_ids[i % len(member_ids)]),
            },
            separators=(",", ":"),
        ).encode()
        for i in range(args.events)
    ]
    started = time.perf_counter()
    for i, body in enumerate(bodies):
        msg_id = f"floor_{i}"
        stamp = int(time.time())
        session.post(
            f"{base_url}/crm",
            data=body,
            headers={
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(secret, msg_id, stamp, body),
            },
            timeout=10,
        ).close()
    floor_rate = args.events / (time.perf_counter() - started)
    log(f"floor: {floor_rate:,.0f} POSTs/s (a bare signed loop, one process)")
    del bodies

    # --- the worker ---
    session.get(f"{base_url}/reset")
    subprocess.run(
        [py, "-m", "celery", "-A", "config", "purge", "-f"],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
    )
    worker = subprocess.Popen(
        [
            py,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel",
            "WARNING",
            "--concurrency",
            str(args.workers),
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(ROOT / ".bench-webhooks-worker.log", "w"),
        start_new_session=True,  # its own process group: stopped whole, below
    )
    try:
        return measure(args, env, session, base_url, floor_rate, secret, member_ids, payload)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        receiver.terminate()


def measure(
    args: Any,
    env: dict[str, str],
    session: Any,
    base_url: str,
    floor_rate: float,
    secret: str,
    member_ids: list[int],
    payload: Any,
) -> int:
    import django
    import django.core.cache
    from django.db import connection, transaction

    from core.models import OutboxEvent
    from core.outbox import Event, outbox_add_many
    from integrations.models import WebhookDelivery
    from integrations.webhooks import QUEUED_KEY

    # A dispatch the seeding queued was purged: its flag goes too (else the
    # commits would wait for the beat, which this bench does not run).
    django.core.cache.cache.delete(QUEUED_KEY)
    time.sleep(6)  # the worker's processes start
    log(f"celery worker: {args.workers} processes")

    def produce(count: int, offset: int, rate: float | None) -> dict[str, float]:
        """Commit `count` events, 100 per transaction; answers each event's
        dedupe key and the moment its transaction committed."""
        committed: dict[str, float] = {}
        per = 100
        begin = time.perf_counter()
        for start in range(0, count, per):
            if rate:
                due = begin + start / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            keys = []
            with transaction.atomic():
                events = []
                for i in range(offset + start, offset + min(start + per, count)):
                    member_id = member_ids[i % len(member_ids)]
                    key = f"points.earned:bench-{i}"
                    keys.append(key)
                    events.append(Event("points.earned", key, member_id, payload(i, member_id)))
                outbox_add_many(events)
            now = time.time()
            for key in keys:
                committed[key] = now
        return committed

    def wait_for(total: int) -> None:
        deadline = time.time() + args.timeout
        while time.time() < deadline:
            if session.get(f"{base_url}/count").json() >= total:
                return
            time.sleep(0.2)
        raise SystemExit(
            f"bench: only {session.get(f'{base_url}/count').json()} of {total} arrived"
        )

    def delays(committed: dict[str, float]) -> tuple[list[float], float, float]:
        arrivals = session.get(f"{base_url}/dump").json()
        ids = dict(
            OutboxEvent.objects.filter(dedupe_key__startswith="points.earned:bench-").values_list(
                "dedupe_key", "id"
            )
        )
        out = [arrivals[f"evt_{ids[k]}"] - t for k, t in committed.items()]
        return out, min(committed.values()), max(arrivals.values())

    # --- throughput: a burst ---
    committed = produce(args.events, 0, None)
    produced = max(committed.values()) - min(committed.values())
    log(f"committed {args.events:,} events in {produced:.1f} s")
    wait_for(args.events)
    burst_delays, first, last = delays(committed)
    rate = args.events / (last - first)
    log(
        f"delivered {args.events:,} events: {rate:,.0f} events/s from the first commit "
        f"to the last arrival ({rate / floor_rate:.2f}x the floor); delay p50 "
        f"{percentile(burst_delays, 0.5):.2f} s, p99 {percentile(burst_delays, 0.99):.2f} s "
        "(a backlog: the burst is committed faster than it is sent)"
    )

    # --- delay: paced at half the delivery rate ---
    session.get(f"{base_url}/reset")
    paced_rate = rate / 2
    committed = produce(args.paced, args.events, paced_rate)
    wait_for(args.paced)
    paced_delays, _, _ = delays(committed)
    p50, p99 = percentile(paced_delays, 0.5), percentile(paced_delays, 0.99)
    log(
        f"paced at {paced_rate:,.0f} events/s ({args.paced:,} events): delay from commit to "
        f"delivery p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max "
        f"{max(paced_delays) * 1000:.0f} ms"
    )
    statuses = dict(
        WebhookDelivery.objects.values_list("status").annotate(n=django.db.models.Count("id"))
    )
    log(f"deliveries: {statuses}")
    met = rate >= RATE_TARGET * floor_rate and p99 < P99_TARGET
    log(
        f"targets (>= {RATE_TARGET:.0%} of the floor, p99 < {P99_TARGET:.0f} s): "
        + ("met" if met else "MISSED")
    )

    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
