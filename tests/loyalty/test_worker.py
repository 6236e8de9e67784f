"""The expiry end to end through a real Celery worker process and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from django.db import connection
from kombu import Connection

from loyalty import lifecycle
from loyalty.models import LedgerEntry, Lot, PointsAccount
from loyalty.selectors import ledger_discrepancies

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
AFTER_EXPIRY = datetime(2028, 2, 1, 12, 0, tzinfo=UTC)


def _redis_answers() -> bool:
    try:
        with Connection(REDIS_URL, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not _redis_answers(), reason="needs Redis (REDIS_URL or 127.0.0.1:6379)"),
]


def _lots(make_member, members: int, per_member: int) -> list[int]:
    """Matured lots that expired on 2028-01-31, booked as the ledger would."""
    ids = []
    for _ in range(members):
        member = make_member()
        entries = LedgerEntry.objects.bulk_create(
            [
                LedgerEntry(
                    member=member,
                    kind="earn",
                    points=10,
                    reference=f"bulk-{n}",
                    expires_on=date(2028, 1, 31),
                )
                for n in range(per_member)
            ]
        )
        Lot.objects.bulk_create(
            [
                Lot(
                    member=member,
                    entry=e,
                    points=10,
                    remaining=10,
                    available_on=date(2026, 2, 1),
                    expires_on=date(2028, 1, 31),
                    matured=True,
                )
                for e in entries
            ]
        )
        PointsAccount.objects.filter(member=member).update(balance=10 * per_member)
        ids.append(member.pk)
    return ids


def _balances(member_ids: list[int]) -> set[int]:
    return set(
        PointsAccount.objects.filter(member_id__in=member_ids).values_list("balance", flat=True)
    )


def _start_worker(queue: str) -> subprocess.Popen:
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": REDIS_URL,
        }
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            queue,
            "--pool",
            "solo",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _send(queue: str, **kwargs) -> None:
    with Connection(REDIS_URL) as conn:
        lifecycle.points_expire.task.apply_async(kwargs=kwargs, queue=queue, connection=conn)


def _expired() -> int:
    return LedgerEntry.objects.filter(kind="expire").count()


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _stop(worker: subprocess.Popen, sig: int = signal.SIGTERM) -> str:
    if worker.poll() is None:
        os.killpg(worker.pid, sig)
    try:
        out, _ = worker.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        out, _ = worker.communicate()
    return out.decode(errors="replace")


def test_a_real_worker_runs_the_expiry_end_to_end(make_member):
    members = _lots(make_member, members=5, per_member=4)
    queue = f"test-{uuid.uuid4().hex}"
    worker = _start_worker(queue)
    try:
        _send(queue, as_of=AFTER_EXPIRY.isoformat())
        done = _wait_for(lambda: _expired() == 20, 60)
    finally:
        log = _stop(worker)
    assert done, f"the worker did not expire the lots; its log:\n{log}"
    assert _balances(members) == {0}
    assert ledger_discrepancies() == []


def test_a_worker_killed_half_way_and_run_again_expires_each_lot_once(make_member):
    members = _lots(make_member, members=20, per_member=40)
    queue = f"test-{uuid.uuid4().hex}"
    worker = _start_worker(queue)
    try:
        _send(queue, as_of=AFTER_EXPIRY.isoformat(), batch_size=5)
        started = _wait_for(lambda: _expired() > 0, 60)
    finally:
        log = _stop(worker, signal.SIGKILL)
    assert started, f"the worker never started; its log:\n{log}"
    part = _expired()
    assert 0 < part < 800, "the kill should land half way"
    assert ledger_discrepancies() == []  # every committed batch is whole
    lifecycle.points_expire(as_of=AFTER_EXPIRY)
    assert _expired() == 800
    assert (
        LedgerEntry.objects.filter(kind="expire").values("reference", "member").distinct().count()
        == 800
    )
    assert _balances(members) == {0}
    assert ledger_discrepancies() == []
