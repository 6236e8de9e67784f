"""Structured logs (core/logs.py, core/redaction.py, config/gunicorn.py): a
JSON line per request with its request id, route and client; the id in the
tasks a request enqueues and in the worker's lines for them; never personal
data, a key, a card number or a voucher code."""

from __future__ import annotations

import io
import json
import logging
import runpy
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from celery.worker.request import Request as WorkerRequest

from config.celery import app as celery_app
from core.logs import json_formatter, request_id_of
from core.redaction import path_mask, redact
from tests.helpers import claim, purchase_body, redeem

ROOT = Path(__file__).resolve().parents[2]


class LogCapture:
    """Every line logged while it is attached, rendered by the production
    formatter (LOG_FORMAT=json), as text and parsed."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(json_formatter())

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def requests(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["event"] == "request"]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture.handler)
    root.setLevel(logging.INFO)
    yield capture
    root.removeHandler(capture.handler)
    root.setLevel(level)


pytestmark = pytest.mark.django_db


# --- the request line ------------------------------------------------------------


def test_a_request_logs_one_json_line_with_its_request_id_route_and_client(api, make_member, logs):
    member = make_member()
    response = api.get(
        f"/api/v1/members/{member.member_number}", HTTP_X_REQUEST_ID="till-42.req-0001"
    )
    assert response.status_code == 200
    assert response["X-Request-ID"] == "till-42.req-0001"
    [line] = logs.requests()
    assert line == {
        "event": "request",
        "method": "GET",
        "route": "/api/v1/members/<str:member_number>",
        "path": f"/api/v1/members/{member.member_number}",
        "status": 200,
        "duration_ms": line["duration_ms"],
        "client": "test client",
        "request_id": "till-42.req-0001",
        "level": "info",
        "logger": "lojal.request",
        "timestamp": line["timestamp"],
    }
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert api.raw_key not in logs.text


def test_without_a_valid_incoming_id_the_request_gets_a_fresh_one(api, logs):
    first = api.get("/api/v1/rewards")
    bad = api.get("/api/v1/rewards", HTTP_X_REQUEST_ID="no spaces <script> allowed")
    long = api.get("/api/v1/rewards", HTTP_X_REQUEST_ID="x" * 200)
    ids = [r["X-Request-ID"] for r in (first, bad, long)]
    assert len(set(ids)) == 3
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert [line["request_id"] for line in logs.requests()] == ids
    assert request_id_of("0b9d5f0e-8d7c-4f3e-9a51-2a7c5c1e9f10") == (
        "0b9d5f0e-8d7c-4f3e-9a51-2a7c5c1e9f10"
    )


def test_an_answer_before_any_view_is_logged_too(api, logs):
    """Refused by a middleware (NUL in the URL) or by authentication: still a
    line, with its status, and the route `unmatched` for a path that is none."""
    assert api.get("/api/v1/members/lookup?email=%00").status_code == 400
    assert api.get("/no/such/page").status_code == 404
    statuses = [(line["route"], line["status"]) for line in logs.requests()]
    assert statuses == [("/api/v1/members/lookup", 400), ("unmatched", 404)]


def test_an_enrolment_logs_no_email_phone_name_or_card(api, logs):
    response = api.post(
        "/api/v1/members",
        {
            "market": "SE",
            "email": "Astrid.Lindgren@example.se",
            "phone": "070-987 65 43",
            "first_name": "Astrid",
            "last_name": "Vimmerbyson",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    member = response.json()
    card = member["cards"][0]
    lookup = api.get("/api/v1/members/lookup", {"email": "astrid.lindgren@example.se"})
    assert lookup.status_code == 200
    by_card = api.get("/api/v1/members/lookup", {"card": card})
    assert by_card.status_code == 200
    blocked = api.delete(f"/api/v1/members/{member['member_number']}/cards/{card}")
    assert blocked.status_code in (200, 204), blocked.content

    lines = logs.requests()
    assert [line["status"] for line in lines] == [201, 200, 200, blocked.status_code]
    assert lines[-1]["path"] == f"/api/v1/members/{member['member_number']}/cards/***"
    text = logs.text.lower()
    for secret in ("astrid", "vimmerbyson", "example.se", "7098765", "+46", card, api.raw_key):
        assert secret.lower() not in text, secret


def test_a_voucher_code_never_reaches_the_log(api, make_member, logs):
    voucher = claim(api, make_member(points=500), "voucher-50").json()
    code = voucher["code"]  # as shown: XXXX-XXXX-XXXXX
    assert api.get(f"/api/v1/vouchers/{code}").status_code == 200
    assert api.get(f"/api/v1/vouchers/{code}/qr.svg").status_code == 200
    assert redeem(api, code).status_code == 200
    assert redeem(api, code.replace("-", "").lower()).status_code == 409
    routes = [line["route"] for line in logs.requests()]
    assert routes == [
        "/api/v1/members/<str:member_number>/rewards",
        "/api/v1/vouchers/<str:code>",
        "/api/v1/vouchers/<str:code>/qr.svg",
        "/api/v1/vouchers/<str:code>/redeem",
        "/api/v1/vouchers/<str:code>/redeem",
    ]
    assert [line["path"] for line in logs.requests()][1:] == [
        "/api/v1/vouchers/***",
        "/api/v1/vouchers/***/qr.svg",
        "/api/v1/vouchers/***/redeem",
        "/api/v1/vouchers/***/redeem",
    ]
    text = logs.text.upper()
    assert code not in text and code.replace("-", "") not in text


def test_a_server_error_logs_its_traceback_with_the_request_id_and_masked(settings, logs):
    from django.test import Client

    settings.ROOT_URLCONF = "tests.core.failing_urls"
    client = Client(raise_request_exception=False)
    response = client.get("/tests/fails/1000000017", HTTP_X_REQUEST_ID="rid-of-the-failure")
    assert response.status_code == 500
    assert response["X-Request-ID"] == "rid-of-the-failure"
    [error] = [line for line in logs.lines if line["logger"] == "django.request"]
    assert error["level"] == "error"
    assert error["request_id"] == "rid-of-the-failure"
    assert "RuntimeError: duplicate key (email)=([email]) for 1000000017" in error["exception"]
    [request] = logs.requests()
    assert (request["route"], request["status"]) == ("/tests/fails/<str:member_number>", 500)
    assert "kim@" not in logs.text


# --- the processor that masks ------------------------------------------------------


def test_personal_data_and_secrets_are_masked_whatever_logs_them(logs):
    """Our lines by key, nested too; anyone's (Django, Celery, a library) by
    what the text looks like, the message and a traceback included."""
    ours = structlog.get_logger("lojal.test")
    ours.info(
        "member changed",
        member_number="1000000017",
        email="eva@example.com",
        Phone="+46701234567",
        changes={"first_name": "Eva", "nested": [{"card": "9752000011112222"}]},
        note="write to eva@example.com or +46 70 123 45 67, card 9752 0000 1111 2222",
    )
    theirs = logging.getLogger("some.library")
    theirs.warning("key lj_0123abcd_s3cr3tS3cr3t-_x used by %s", "ola@example.org")
    theirs.warning("GET /api/v1/vouchers/ABCD-EFGH-JKLMN/redeem, Authorization: Api-Key abc")
    try:
        raise ValueError("duplicate key (email)=(per@example.net) card 9752000011113333")
    except ValueError:
        theirs.exception("failed")

    mine, key_line, path_line, failed = logs.lines
    assert mine["member_number"] == "1000000017"  # an identifier, not a secret
    assert mine["email"] == mine["Phone"] == "***"
    assert mine["changes"] == {"first_name": "***", "nested": [{"card": "***"}]}
    assert mine["note"] == "write to [email] or [phone], card [number]"
    assert key_line["event"] == "key [key] used by [email]"
    assert path_line["event"] == "GET /api/v1/vouchers/***/redeem, Authorization: Api-Key [key]"
    assert "[email]" in failed["exception"] and "[number]" in failed["exception"]
    for secret in ("eva@", "ola@", "per@", "0123456", "s3cr3t", "ABCD-EFGH", "97520000"):
        assert secret not in logs.text


def test_the_processor_leaves_what_is_not_personal():
    event = {
        "event": "job finished",
        "job": "points_expire",
        "rows": 1200,
        "duration_ms": 1234567890123.5,
        "route": "/api/v1/vouchers/<str:code>",
        "request_id": "12345678901234567890",
    }
    assert redact(None, "info", dict(event)) == event


def test_secret_path_segments_are_masked_and_others_kept():
    assert path_mask("/api/v1/vouchers/ABCD-EFGH-JKLMN") == "/api/v1/vouchers/***"
    assert path_mask("/api/v1/vouchers/abcd/qr.png") == "/api/v1/vouchers/***/qr.png"
    assert path_mask("/api/v1/members/1000000017/cards/9752000011112222") == (
        "/api/v1/members/1000000017/cards/***"
    )
    for kept in (
        "/api/v1/members/1000000017",
        "/api/v1/members/1000000017/cards",
        "/api/v1/members/1000000017/benefits/coffee/use",
        "/api/v1/redemptions/rd_123/capture",
        "/api/v1/vouchers",
    ):
        assert path_mask(kept) == kept


# --- gunicorn's access log ---------------------------------------------------------


class _Response:
    status = "200 OK"
    sent = 123
    headers = [("Content-Type", "application/json"), ("X-Request-ID", "rid-0001-abcdef")]


class _Request:
    headers = [("AUTHORIZATION", "Api-Key lj_0123abcd_secret"), ("COOKIE", "sessionid=abc")]


def test_gunicorns_access_log_masks_secret_segments_and_drops_query_and_headers():
    from gunicorn.config import Config

    conf = runpy.run_path(str(ROOT / "config" / "gunicorn.py"))
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", conf["access_log_format"])
    logger = conf["logger_class"](cfg)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.access_log.addHandler(handler)
    try:
        environ = {
            "REQUEST_METHOD": "POST",
            "RAW_URI": "/api/v1/vouchers/ABCD-EFGH-JKLMN/redeem?email=a@b.se",
            "PATH_INFO": "/api/v1/vouchers/ABCD-EFGH-JKLMN/redeem",
            "QUERY_STRING": "email=a@b.se",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "10.0.0.7",
            "HTTP_REFERER": "https://shop.example/vouchers/ABCD-EFGH-JKLMN",
        }
        logger.access(_Response(), _Request(), environ, timedelta(microseconds=2500))
        # Even a format that asks for them gets none of the secrets.
        cfg.set("access_log_format", "%(r)s %(q)s %(f)s %({authorization}i)s %({cookie}i)s")
        logger.access(_Response(), _Request(), environ, timedelta(microseconds=2500))
    finally:
        logger.access_log.removeHandler(handler)
    plain, greedy = stream.getvalue().splitlines()
    assert plain == '10.0.0.7 "POST /api/v1/vouchers/***/redeem" 200 123 0.002500s rid-0001-abcdef'
    assert greedy == "POST /api/v1/vouchers/***/redeem HTTP/1.1 - - - -"


def test_in_production_gunicorns_own_lines_are_json_too(monkeypatch, capsys):
    from gunicorn.config import Config

    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "config.settings.production")
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    conf = runpy.run_path(str(ROOT / "config" / "gunicorn.py"))
    cfg = Config()
    for name in ("accesslog", "access_log_format", "logconfig_dict"):
        cfg.set(name, conf[name])
    root = logging.getLogger()
    root_handlers, root_level = root.handlers[:], root.level
    logger = conf["logger_class"](cfg)
    try:
        environ = {
            "REQUEST_METHOD": "GET",
            "RAW_URI": "/api/v1/vouchers/ABCD-EFGH-JKLMN?x=1",
            "PATH_INFO": "/api/v1/vouchers/ABCD-EFGH-JKLMN",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "10.0.0.7",
        }
        logger.access(_Response(), _Request(), environ, timedelta(microseconds=2500))
        logger.info("Booting worker with pid: %s", 4242)
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finally:
        # Back to the handlers gunicorn would have without the dict.
        for name in ("gunicorn.error", "gunicorn.access"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
        root.handlers[:] = root_handlers
        root.setLevel(root_level)
    assert [(line["logger"], line["event"]) for line in lines] == [
        (
            "gunicorn.access",
            '10.0.0.7 "GET /api/v1/vouchers/***" 200 123 0.002500s rid-0001-abcdef',
        ),
        ("gunicorn.error", "Booting worker with pid: 4242"),
    ]
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "config.settings.local")
    assert "logconfig_dict" not in runpy.run_path(str(ROOT / "config" / "gunicorn.py"))


def test_every_gunicorn_the_project_starts_uses_that_access_log():
    for path in ("bin/run", "Dockerfile"):
        text = (ROOT / path).read_text()
        assert "config/gunicorn.py" in text and "access-logformat" not in text, path


# --- into the worker -----------------------------------------------------------------


@pytest.fixture
def broker() -> Iterator[Any]:
    """Kombu's in-memory transport in place of Redis: the tasks a request
    enqueues are real messages, read back as a worker reads them."""
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = "memory://"
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    with celery_app.connection_for_read() as connection:
        queue = connection.SimpleQueue("celery")
        queue.clear()
        yield queue
        queue.clear()
        queue.close()
    celery_app.conf.broker_url = saved
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
def test_the_request_id_follows_the_request_into_the_task_it_enqueues_and_its_lines(
    api, make_member, settings, broker, logs
):
    """A purchase writes outbox events; their commit (a real one: the
    callbacks run inside the request, as in production) enqueues the
    webhooks' dispatch (integrations.webhooks.dispatch_soon). The message
    carries the request's id and client; the worker's lines for it too."""
    settings.WEBHOOK_DISPATCH_ON_COMMIT = True
    member = make_member()
    response = api.post(
        "/api/v1/purchases",
        purchase_body(member.member_number, "R-obs-1"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="obs-1",
        HTTP_X_REQUEST_ID="pos-7.rid-000123",
    )
    assert response.status_code == 201, response.content
    message = broker.get(timeout=2)
    assert message.headers["task"] == "integrations.webhooks_dispatch"
    assert message.headers["lojal_request_id"] == "pos-7.rid-000123"
    assert message.headers["lojal_client"] == "test client"

    # As the worker runs it: its Request from the message, then execute().
    WorkerRequest(message, app=celery_app).execute()
    [finished] = [line for line in logs.lines if line["event"] == "job finished"]
    assert finished["job"] == "webhooks_dispatch"
    assert finished["request_id"] == "pos-7.rid-000123"
    assert finished["client"] == "test client"
    assert finished["task"] == "integrations.webhooks_dispatch"
    assert finished["rows"] >= 1  # the purchase's events, handed on
    # Nothing of the task's context stays behind in the process.
    assert structlog.contextvars.get_contextvars() == {}


def test_a_task_enqueued_outside_a_request_carries_no_request_id(broker):
    from core.tasks import heartbeat

    heartbeat.delay()
    message = broker.get(timeout=2)
    assert "lojal_request_id" not in message.headers


# --- the settings --------------------------------------------------------------------


def test_production_logs_json_and_local_logs_for_people(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "x" * 50)
    monkeypatch.setenv("ALLOWED_HOSTS", "lojal.example.com")
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    production = runpy.run_module("config.settings.production")
    local = runpy.run_module("config.settings.local")
    assert production["LOGGING"]["handlers"]["console"]["formatter"] == "json"
    assert local["LOGGING"]["handlers"]["console"]["formatter"] == "console"
    assert production["CELERY_WORKER_HIJACK_ROOT_LOGGER"] is False
    assert production["MIDDLEWARE"][0] == "core.logs.RequestLogMiddleware"
