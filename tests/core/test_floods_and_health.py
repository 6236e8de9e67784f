"""Floods: calls without a valid key are counted per client IP (behind the
trusted proxies) and answered 429 past their limit, before any key lookup;
unknown keys never enter the key cache. Health: liveness without I/O,
readiness (database, broker, worker heartbeat) cached for a second."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import RequestFactory
from django.utils import timezone

from core import auth, health
from core.auth import client_for_key
from core.http import client_ip
from core.models import WorkerHeartbeat
from core.throttling import WINDOW_SECONDS
from tests.contract import ContractClient
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db

LOOKUP = "/api/v1/members/lookup?member_number=1"


@pytest.fixture
def fresh_window() -> None:
    """Counts live in one-minute windows: start well inside one."""
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < 10:
        time.sleep(left + 0.1)


@pytest.fixture(autouse=True)
def _fresh_readiness() -> Any:
    health.forget_readiness()
    yield
    health.forget_readiness()


# --- the client IP ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        (0, "198.51.100.1", "10.0.0.9"),  # no proxy trusted: the header is the client's to forge
        (1, "198.51.100.1", "198.51.100.1"),
        (1, "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the forged left part is ignored
        (2, "6.6.6.6, 198.51.100.1, 10.0.0.2", "198.51.100.1"),
        (2, "198.51.100.1", "10.0.0.9"),  # did not pass both proxies
        (1, "not-an-ip", "10.0.0.9"),
        (1, "", "10.0.0.9"),
    ],
)
def test_the_client_ip_is_taken_behind_the_trusted_proxies(settings, trusted, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = trusted
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


# --- floods -------------------------------------------------------------------------


def test_calls_without_a_key_are_limited_per_ip(settings, demo, fresh_window):
    settings.LOJAL_UNAUTHENTICATED_RATE_PER_MINUTE = 3
    flood = ContractClient(REMOTE_ADDR="203.0.113.1")
    for _ in range(3):
        assert_problem(flood.get(LOOKUP), 401, "not_authenticated")
    response = flood.get(LOOKUP)
    assert_problem(response, 429, "rate_limited")
    assert 0 < int(response["Retry-After"]) <= WINDOW_SECONDS
    # Another IP is not held back by it.
    assert_problem(ContractClient(REMOTE_ADDR="203.0.113.2").get(LOOKUP), 401, "not_authenticated")


def test_failed_keys_are_limited_per_ip_and_then_cost_no_query(
    settings, make_api, make_member, fresh_window, django_assert_num_queries
):
    settings.LOJAL_UNAUTHENTICATED_RATE_PER_MINUTE = 3
    member = make_member()
    flood = ContractClient(REMOTE_ADDR="203.0.113.3")
    for i in range(2):
        flood.credentials(HTTP_AUTHORIZATION=f"Api-Key lj_bad_{i}")
        assert_problem(flood.get(LOOKUP), 401, "not_authenticated")
    flood.credentials(HTTP_AUTHORIZATION="Bearer nonsense")  # a malformed header counts too
    assert_problem(flood.get(LOOKUP), 401, "not_authenticated")
    flood.credentials(HTTP_AUTHORIZATION="Api-Key lj_bad_x")
    with django_assert_num_queries(0):
        response = flood.get(LOOKUP)
    assert_problem(response, 429, "rate_limited")
    # A real key from another IP is served; from the flooding IP a key not
    # verified in the last seconds waits out the window like the rest.
    good = make_api(scopes=["members:read"])
    good.defaults["REMOTE_ADDR"] = "203.0.113.4"
    url = f"/api/v1/members/lookup?member_number={member.member_number}"
    assert good.get(url).status_code == 200
    auth.forget_cached_clients()
    flood.credentials(HTTP_AUTHORIZATION=f"Api-Key {good.raw_key}")
    assert_problem(flood.get(url), 429, "rate_limited")


def test_the_flood_limit_counts_the_forwarded_client_behind_a_proxy(settings, demo, fresh_window):
    settings.LOJAL_UNAUTHENTICATED_RATE_PER_MINUTE = 2
    settings.TRUSTED_PROXY_COUNT = 1
    one = ContractClient(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")
    other = ContractClient(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.6")
    for _ in range(2):
        assert_problem(one.get(LOOKUP), 401, "not_authenticated")
    assert_problem(one.get(LOOKUP), 429, "rate_limited")
    assert_problem(other.get(LOOKUP), 401, "not_authenticated")


def test_unknown_keys_never_enter_the_key_cache(make_api):
    good = make_api(scopes=["members:read"])
    assert client_for_key(good.raw_key) is not None
    cached_at = auth._cache.kept()
    for i in range(auth.CLIENT_CACHE_MAX + 50):
        assert client_for_key(f"lj_unknown_{i}") is None
    assert auth._cache.kept() == cached_at  # the real key's entry, untouched; nothing else


# --- health -------------------------------------------------------------------------


def test_liveness_answers_without_any_io(client, django_assert_num_queries, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # not even a broker is asked
    with django_assert_num_queries(0):
        response = client.get("/health/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)")
def test_readiness_checks_database_redis_and_workers_once_a_second(
    client, demo, django_assert_num_queries
):
    WorkerHeartbeat.objects.update_or_create(name="worker", defaults={"seen_at": timezone.now()})
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "workers": "ok"},
    }
    # Within the second, the same answer without asking again.
    WorkerHeartbeat.objects.all().delete()
    with django_assert_num_queries(0):
        assert client.get("/health/ready").json()["status"] == "ok"
    # /health/ is the older name of the same answer.
    assert client.get("/health/").json() == response.json()
    time.sleep(health.READY_CACHE_SECONDS)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["workers"] == "none yet"
    assert response["Retry-After"] == "1"


def test_readiness_reports_a_stale_heartbeat_and_a_dead_redis(client, demo, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    seen = timezone.now() - timedelta(seconds=settings.LOJAL_WORKER_HEARTBEAT_SECONDS + 5)
    WorkerHeartbeat.objects.update_or_create(name="worker", defaults={"seen_at": seen})
    started = time.monotonic()
    response = client.get("/health/ready")
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.json() == {
        "status": "unhealthy",
        "checks": {"database": "ok", "redis": "error: ConnectionError", "workers": "stale"},
    }
