"""Outages, proven against real services at ports that stop answering:

- Redis (throttle store, cache, Celery broker) down: lookups and purchases
  still answer, the throttle fails open with a log line, the dispatch wake
  after commit does not raise, and the events wait in the outbox. Under
  load, Redis's connections are cut mid-run (a proxy in front of the real
  Redis is killed): every purchase answers 201 and is booked exactly once.
- Postgres down: every call answers 503 service_unavailable problem+json
  with Retry-After within 2 seconds, and the service recovers by itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import connection

from config.celery import app as celery_app
from core import health, throttling
from core.models import OutboxEvent
from integrations import webhooks
from loyalty.models import LedgerEntry, Purchase
from tests.contract import ContractClient
from tests.helpers import account, assert_problem, purchase_body

REDIS_URL = os.environ.get("REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs Redis (REDIS_URL)")


def dead_port() -> int:
    """A port on 127.0.0.1 nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TcpProxy:
    """A TCP forwarder to a real server that can be killed: its listener
    closes (new connections are refused) and every open connection is cut,
    as when the server dies."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.killed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                downstream.close()
                continue
            with self.lock:
                if self.killed:
                    downstream.close()
                    upstream.close()
                    return
                self.open.update((downstream, upstream))
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def kill(self) -> None:
        with self.lock:
            self.killed = True
            self.listener.close()
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@contextlib.contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Celery publishes to `url` meanwhile (fresh connection pools)."""
    saved = (celery_app.conf.broker_url, celery_app._pool, celery_app.amqp._producer_pool)
    celery_app.conf.broker_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    try:
        yield
    finally:
        if celery_app._pool is not None:
            celery_app._pool.force_close_all()
        celery_app.conf.broker_url = saved[0]
        celery_app._pool, celery_app.amqp._producer_pool = saved[1], saved[2]


def redis_settings(settings: Any, url: str) -> None:
    """Throttle, cache and dispatch wake all on the Redis at `url`."""
    settings.REDIS_URL = url
    settings.LOJAL_THROTTLE_IN_REDIS = True
    settings.WEBHOOK_DISPATCH_ON_COMMIT = True
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"lojal-outage-{os.getpid()}",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


# --- Redis down ---------------------------------------------------------------------


@pytest.mark.django_db
def test_with_redis_down_lookups_and_purchases_answer_and_events_wait(
    settings, make_api, make_member, caplog
):
    member = make_member()
    api = make_api(scopes=["members:read", "purchases:write"])
    dead = f"redis://127.0.0.1:{dead_port()}/0"
    redis_settings(settings, dead)
    caplog.set_level(logging.WARNING)
    with broker_at(dead):
        started = time.monotonic()
        lookup = api.get(f"/api/v1/members/lookup?member_number={member.member_number}")
        purchase = api.post(
            "/api/v1/purchases", purchase_body(member.member_number, "R-down"), format="json"
        )
        # Only the commit's own callbacks are run here (the test's
        # transaction never commits): the dispatch wake must not raise.
        webhooks.dispatch_soon()
        elapsed = time.monotonic() - started
    assert lookup.status_code == 200, lookup.content
    assert purchase.status_code == 201, purchase.content
    assert elapsed < 5, elapsed
    assert account(member) == (0, 499)
    assert OutboxEvent.objects.filter(
        topic="points.earned", member=member, delivered_at__isnull=True
    ).exists()
    logged = [r.getMessage() for r in caplog.records]
    assert any("throttle store unavailable" in m for m in logged), logged
    assert any("webhooks dispatch not queued" in m for m in logged), logged


def test_with_the_broker_down_the_dispatch_wake_gives_up_quickly_and_quietly(settings, caplog):
    settings.WEBHOOK_DISPATCH_ON_COMMIT = True  # the cache (in-process here) answers
    caplog.set_level(logging.WARNING)
    with broker_at(f"redis://127.0.0.1:{dead_port()}/0"):
        started = time.monotonic()
        webhooks.dispatch_soon()
        elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    assert any("webhooks dispatch not queued" in r.getMessage() for r in caplog.records)
    # The wake is free to be tried again (its key is not left behind), but
    # not by the commits of the next seconds: they leave the broker alone.
    from django.core.cache import cache

    assert cache.get(webhooks.QUEUED_KEY) is None
    failed_at = webhooks._unqueued_failed_at
    with broker_at(f"redis://127.0.0.1:{dead_port()}/0"):
        webhooks.dispatch_soon()
    assert webhooks._unqueued_failed_at == failed_at  # not tried, so not failed again
    assert sum("dispatch not queued" in r.getMessage() for r in caplog.records) == 1


@needs_redis
def test_after_a_failure_the_throttle_leaves_redis_alone_for_a_while(settings, caplog):
    """A Redis that hangs costs one call its timeout, not every call."""
    settings.LOJAL_THROTTLE_IN_REDIS = True
    settings.REDIS_URL = f"redis://127.0.0.1:{dead_port()}/0"
    caplog.set_level(logging.WARNING)
    key = f"lojal:test-pause:{os.getpid()}:{time.time()}"
    assert throttling._count(key) is None
    assert sum("throttle store unavailable" in r.getMessage() for r in caplog.records) == 1
    settings.REDIS_URL = REDIS_URL  # Redis is back, but the pause is not over
    assert throttling._count(key) is None
    assert throttling._peek(key) is None
    throttling.forget_failures()  # as PAUSE_SECONDS later
    assert throttling._count(key) == 1
    assert throttling._peek(key) == 1
    # Failures in a row, each after its pause: one line per LOG_EVERY_SECONDS.
    settings.REDIS_URL = f"redis://127.0.0.1:{dead_port()}/0"
    for _ in range(3):
        throttling._paused_until = 0.0  # as if the pause were over
        assert throttling._count(key) is None
    assert sum("throttle store unavailable" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.django_db
def test_with_redis_down_calls_without_a_key_are_still_refused_not_failed(settings, demo):
    redis_settings(settings, f"redis://127.0.0.1:{dead_port()}/0")
    settings.LOJAL_UNAUTHENTICATED_RATE_PER_MINUTE = 1
    anonymous = ContractClient(REMOTE_ADDR="203.0.113.20")
    for _ in range(3):  # not counted (fails open), never a 500
        assert_problem(anonymous.get("/api/v1/members/lookup?card=1"), 401, "not_authenticated")


@needs_redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_redis_cut_mid_load_every_purchase_answers_201_and_books_once(
    settings, make_api, make_member
):
    """Threads post purchases through the real Redis (throttle, cache,
    broker) behind a proxy; a third of the way in, the proxy is killed."""
    target = urlsplit(REDIS_URL)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    url = f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}"
    redis_settings(settings, url)
    member = make_member()
    raw_key = make_api(scopes=["purchases:write"]).raw_key
    threads_n, each = 6, 10
    total = threads_n * each
    done = 0
    done_lock = threading.Lock()
    results: dict[str, tuple[int, bool]] = {}
    bodies: dict[str, dict[str, Any]] = {}
    barrier = threading.Barrier(threads_n + 1)

    def work(t: int) -> None:
        nonlocal done
        client = ContractClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
        try:
            barrier.wait(timeout=30)
            for i in range(each):
                receipt = f"R-cut-{t}-{i}"
                body = bodies[receipt] = purchase_body(member.member_number, receipt, "10.00")
                response = client.post("/api/v1/purchases", body, format="json")
                with done_lock:
                    results[receipt] = (response.status_code, proxy.killed)
                    done += 1
        finally:
            connection.close()

    with broker_at(url):
        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
        for worker in workers:
            worker.start()
        barrier.wait(timeout=30)
        while done < total // 3:
            time.sleep(0.01)
        proxy.kill()
        for worker in workers:
            worker.join(timeout=120)

    assert len(results) == total
    assert {status for status, _ in results.values()} == {201}, results
    after_cut = sum(1 for _, killed in results.values() if killed)
    assert after_cut >= total // 2, after_cut  # most ran with Redis gone
    receipts = Purchase.objects.filter(member=member).values_list("receipt_id", flat=True)
    assert sorted(receipts) == sorted(results)
    earned = LedgerEntry.objects.filter(member=member, kind="earn")
    assert earned.count() == total
    assert account(member) == (0, 10 * total)
    assert (
        OutboxEvent.objects.filter(
            topic="points.earned", member=member, delivered_at__isnull=True
        ).count()
        == total
    )
    # A till that retries after the outage gets the first answer, booked once.
    retry = ContractClient()
    retry.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    again = retry.post("/api/v1/purchases", bodies["R-cut-0-0"], format="json")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert LedgerEntry.objects.filter(member=member, kind="earn").count() == total
    call_command("check_ledger")


# --- Postgres down ------------------------------------------------------------------


@contextlib.contextmanager
def database_at_dead_port() -> Iterator[None]:
    """The default connection (and every new one) points at a refusing port."""
    connection.close()
    saved = connection.settings_dict["PORT"]
    connection.settings_dict["PORT"] = str(dead_port())
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_with_postgres_down_every_call_answers_503_fast_and_recovers(
    make_api, make_member, admin_user
):
    member = make_member()
    api = make_api()
    lookup = f"/api/v1/members/lookup?member_number={member.member_number}"
    assert api.get(lookup).status_code == 200
    anonymous = ContractClient()
    unknown = ContractClient()
    unknown.credentials(HTTP_AUTHORIZATION="Api-Key lj_unknown_key")
    staff = ContractClient()
    staff.force_login(admin_user)

    health.forget_readiness()
    with database_at_dead_port():
        calls = [
            lambda: api.get(lookup),
            lambda: api.post(
                "/api/v1/purchases", purchase_body(member.member_number, "R-pg"), format="json"
            ),
            lambda: api.get(f"/api/v1/members/{member.member_number}/ledger"),
            lambda: unknown.get(lookup),
            lambda: staff.get("/admin/members/member/"),
        ]
        for call in calls:
            started = time.monotonic()
            response = call()
            elapsed = time.monotonic() - started
            body = assert_problem(response, 503, "service_unavailable")
            assert int(response["Retry-After"]) > 0, body
            assert elapsed < 2, elapsed
        assert anonymous.get("/health/live").status_code == 200
        assert anonymous.get("/health/ready").status_code == 503

    # Back: the next calls are served, with no restart.
    assert api.get(lookup).status_code == 200
    response = api.post(
        "/api/v1/purchases", purchase_body(member.member_number, "R-pg"), format="json"
    )
    assert response.status_code == 201
    assert Purchase.objects.filter(member=member, receipt_id="R-pg").count() == 1
    assert staff.get("/admin/members/member/").status_code == 200
