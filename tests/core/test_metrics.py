"""/metrics (core/metrics.py): requests by route and status, job runs, rows
and durations, throttled calls, the outbox backlog; closed in production
unless a setting names the reader; counts shared by processes in
multiprocess mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from core.jobs import JOBS, Job, JobResult
from core.outbox import outbox_add
from rewards.models import Reward, Voucher
from rewards.services import voucher_issue
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def scraped(client: Any, **headers: Any) -> dict[tuple[str, tuple], float]:
    """GET /metrics, as {(sample name, sorted labels): value}."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_and_timed_by_route_and_status(api, client, make_member):
    member = make_member()
    route = "/api/v1/members/<str:member_number>"
    labels = {"method": "GET", "route": route}
    before = scraped(client)
    assert api.get(f"/api/v1/members/{member.member_number}").status_code == 200
    assert api.get(f"/api/v1/members/{member.member_number}").status_code == 200
    assert api.get("/api/v1/members/1000000009").status_code == 404
    after = scraped(client)

    def moved(name: str, **more: str) -> float:
        return value(after, name, **labels, **more) - value(before, name, **labels, **more)

    assert moved("lojal_http_requests_total", status="200") == 2
    assert moved("lojal_http_requests_total", status="404") == 1
    assert moved("lojal_http_request_duration_seconds_count", status="200") == 2
    assert moved("lojal_http_request_duration_seconds_sum", status="200") > 0
    # Every bucket up to +Inf holds both; the smallest may not.
    assert moved("lojal_http_request_duration_seconds_bucket", status="200", le="+Inf") == 2
    # The route is the pattern: no member number becomes a label.
    assert not [key for key in after if member.member_number in str(key)]


def test_a_method_nobody_serves_does_not_grow_the_labels(api, client):
    before = scraped(client)
    api.generic("BREW", "/api/v1/rewards")
    after = scraped(client)
    labels = {"method": "other", "route": "/api/v1/rewards", "status": "405"}
    assert (
        value(after, "lojal_http_requests_total", **labels)
        - value(before, "lojal_http_requests_total", **labels)
        == 1
    )


def test_a_job_run_counts_its_rows_and_duration(client, make_member, now):
    member = make_member()
    reward = Reward.objects.get(code="voucher-50")
    issued = [voucher_issue(member=member, reward=reward, source="gift") for _ in range(2)]
    before = scraped(client)
    result = JOBS["vouchers_expire"](as_of=now + timedelta(days=3 * 365))
    after = scraped(client)
    assert result.rows >= 2
    assert all(Voucher.objects.get(pk=v.pk).status == Voucher.Status.EXPIRED for v in issued)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("lojal_job_runs_total", job="vouchers_expire", outcome="ok") == 1
    assert moved("lojal_job_rows_total", job="vouchers_expire") == result.rows
    assert moved("lojal_job_duration_seconds_count", job="vouchers_expire") == 1
    assert moved("lojal_job_duration_seconds_sum", job="vouchers_expire") > 0


def test_a_failed_job_run_is_counted_as_an_error_and_raises(client):
    def obs_always_fails(*, as_of: Any) -> JobResult:
        raise RuntimeError("the batch broke")

    failing = Job(
        name="obs_always_fails",
        func=obs_always_fails,
        task_name="tests.obs_always_fails",
        title="tests: always fails",
        schedule=60,
        help="",
        unit="rows",
    )
    before = scraped(client)
    with pytest.raises(RuntimeError):
        failing(as_of=timezone.now())
    after = scraped(client)
    key = ("lojal_job_runs_total", (("job", "obs_always_fails"), ("outcome", "error")))
    assert after[key] - before.get(key, 0.0) == 1


def test_throttled_calls_are_counted_by_client(make_api, client):
    limited = make_api(scopes=["members:read"], rate_per_minute=1)
    key = ("lojal_throttled_total", (("client", "test client"),))
    before = scraped(client).get(key, 0.0)
    assert limited.get("/api/v1/rewards").status_code == 200
    assert_problem(limited.get("/api/v1/rewards"), 429, "rate_limited")
    assert_problem(limited.get("/api/v1/rewards"), 429, "rate_limited")
    assert scraped(client)[key] - before == 2


def test_the_outbox_backlog_is_read_on_scrape(client, make_member):
    member = make_member()
    before = scraped(client)
    outbox_add(topic="member.updated", dedupe_key="obs:backlog:1", member_id=member.pk)
    outbox_add(topic="member.updated", dedupe_key="obs:backlog:2", member_id=member.pk)
    after = scraped(client)
    backlog = ("lojal_outbox_backlog_events", ())
    assert after[backlog] - before[backlog] == 2
    assert after[("lojal_outbox_oldest_pending_age_seconds", ())] >= 0


# --- who may read it -----------------------------------------------------------------


def test_metrics_are_refused_in_production_without_the_settings_credentials(client, settings):
    settings.METRICS_PUBLIC = False
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    assert_problem(client.get("/metrics"), 404, "not_found")  # off: nobody named

    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert_problem(client.get("/metrics"), 403, "permission_denied")
    assert_problem(
        client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token"), 403, "permission_denied"
    )
    assert_problem(
        client.get("/metrics", HTTP_AUTHORIZATION="Api-Key s3cret-scrape-token"),
        403,
        "permission_denied",
    )
    assert scraped(client, HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")

    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.1.0.0/16"]
    assert_problem(client.get("/metrics"), 403, "permission_denied")  # from 127.0.0.1
    assert_problem(
        client.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3"), 403, "permission_denied"
    )
    assert scraped(client, REMOTE_ADDR="10.1.2.3")
    assert_problem(client.get("/metrics", REMOTE_ADDR="not an address"), 403, "permission_denied")


def test_metrics_answer_get_only(client):
    assert client.post("/metrics").status_code == 405


def _settings_of(module: str, **env: str) -> dict[str, Any]:
    """The metrics settings a fresh process reads from this environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_")}
    clean.update(SECRET_KEY="x" * 50, ALLOWED_HOSTS="lojal.example.com", **env)
    code = (
        f"import json, runpy; s = runpy.run_module('{module}'); print(json.dumps("
        "{k: s[k] for k in ('METRICS_PUBLIC', 'METRICS_TOKEN', 'METRICS_ALLOWED_IPS', "
        "'SECURE_REDIRECT_EXEMPT') if k in s}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=clean, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_production_settings_keep_metrics_closed_and_local_open():
    production = _settings_of("config.settings.production")
    assert (
        production["METRICS_PUBLIC"],
        production["METRICS_TOKEN"],
        production["METRICS_ALLOWED_IPS"],
    ) == (False, "", [])
    assert r"^metrics$" in production["SECURE_REDIRECT_EXEMPT"]
    assert _settings_of("config.settings.local")["METRICS_PUBLIC"] is True
    named = _settings_of(
        "config.settings.production",
        METRICS_ALLOWED_IPS="10.0.0.0/8,192.168.1.5",
        METRICS_TOKEN="t0ken",
    )
    assert (named["METRICS_ALLOWED_IPS"], named["METRICS_TOKEN"]) == (
        ["10.0.0.0/8", "192.168.1.5"],
        "t0ken",
    )


# --- several processes -----------------------------------------------------------------

_COUNT_IN_A_PROCESS = """
import django
django.setup()
from core.metrics import request_observe, job_observe
request_observe(method="GET", route="/api/v1/rewards", status=200, seconds=0.01)
job_observe(job="points_expire", outcome="ok", seconds=2.0, rows={rows})
"""

_SCRAPE = """
import django
django.setup()
from core.metrics import scrape
print(scrape(outbox=False).decode())
"""


def test_in_multiprocess_mode_a_scrape_sums_every_process(tmp_path):
    """As under gunicorn with PROMETHEUS_MULTIPROC_DIR: two processes count,
    a third (any worker answering the scrape) serves the sum."""
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }

    def run(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run(_COUNT_IN_A_PROCESS.format(rows=5))
    run(_COUNT_IN_A_PROCESS.format(rows=7))
    samples = {}
    for family in text_string_to_metric_families(run(_SCRAPE)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    requests = (
        "lojal_http_requests_total",
        (("method", "GET"), ("route", "/api/v1/rewards"), ("status", "200")),
    )
    assert samples[requests] == 2
    assert samples[("lojal_job_rows_total", (("job", "points_expire"),))] == 12
    assert samples[("lojal_job_duration_seconds_count", (("job", "points_expire"),))] == 2
