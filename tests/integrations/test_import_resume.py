"""A run killed half way (SIGKILL, after its first chunk committed) and run
again: every row imported exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from loyalty.models import LedgerEntry, Purchase
from loyalty.selectors import ledger_discrepancies
from members.models import Member
from tests.helpers import MEMBER_HEADER, PURCHASE_HEADER, run, write_csv

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROWS = 300
CHUNK = 50


def start(kind: str, path: Path) -> subprocess.Popen[bytes]:
    """The command in its own process, on the test database, pausing
    between chunks so that the test can kill it half way."""
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            f"import_{kind}",
            str(path),
            "--chunk-size",
            str(CHUNK),
            "--pause",
            "2",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_after_first_chunk(process: subprocess.Popen[bytes], done: Any) -> int:
    deadline = time.monotonic() + 60
    while done() < CHUNK:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the first chunk never committed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    connection.close()  # a fresh look at what was committed
    return done()


def test_members_killed_half_way_then_run_again(demo: None, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "members.csv",
        MEMBER_HEADER,
        [
            {
                "external_id": f"K-{i}",
                "market": "SE",
                "email": f"k{i}@old.test",
                "points": str(i + 1),
                "tier": "silver" if i % 2 else "",
            }
            for i in range(ROWS)
        ],
    )

    def imported() -> int:
        return Member.objects.filter(external_id__startswith="K-").count()

    process = start("members", path)
    half = kill_after_first_chunk(process, imported)
    assert process.returncode == -signal.SIGKILL
    assert CHUNK <= half < ROWS and half % CHUNK == 0  # whole chunks only

    code, report = run("members", path, "--chunk-size", str(CHUNK))
    assert code == 0
    assert [r["status"] for r in report] == ["unchanged"] * half + ["created"] * (ROWS - half)
    assert imported() == ROWS
    assert len({r["member_number"] for r in report}) == ROWS
    assert LedgerEntry.objects.filter(member__external_id__startswith="K-").count() == ROWS
    assert ledger_discrepancies() == []


def test_purchases_killed_half_way_then_run_again(make_member: Any, tmp_path: Path) -> None:
    member = make_member("SE")
    path = write_csv(
        tmp_path / "purchases.csv",
        PURCHASE_HEADER,
        [
            {
                "member_number": member.member_number,
                "store_code": "SE-001",
                "receipt_id": f"K-{i}",
                "occurred_at": "2022-01-01",
                "currency": "SEK",
                "total": str(i),
            }
            for i in range(ROWS)
        ],
    )

    def imported() -> int:
        return Purchase.objects.filter(receipt_id__startswith="K-").count()

    process = start("purchases", path)
    half = kill_after_first_chunk(process, imported)
    assert CHUNK <= half < ROWS and half % CHUNK == 0

    code, report = run("purchases", path, "--chunk-size", str(CHUNK))
    assert code == 0
    assert [r["status"] for r in report] == ["unchanged"] * half + ["created"] * (ROWS - half)
    assert imported() == ROWS
