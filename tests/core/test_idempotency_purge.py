"""Idempotency-Key records are kept IDEMPOTENCY_RETENTION_HOURS (48 by
default, never under the contract's 24) and then deleted by the
`idempotency_purge` job, in batches."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core import checks
from django.core.management import call_command
from django.utils import timezone

from core.idempotency import idempotency_purge
from core.models import IdempotencyRecord

pytestmark = pytest.mark.django_db


def adjust(api, member, key, points=10):
    return api.post(
        f"/api/v1/members/{member.member_number}/adjustments",
        {"points": points, "reason": "goodwill"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


@pytest.fixture
def aged(api, make_member):
    """Five records: made `hours` ago each (as if) by a call with their key."""
    member = make_member()
    now = timezone.now()
    ages = {"k-1h": 1, "k-47h": 47, "k-49h": 49, "k-72h": 72, "k-30d": 24 * 30}
    for key, hours in ages.items():
        assert adjust(api, member, key).status_code == 201
        IdempotencyRecord.objects.filter(key=key).update(created_at=now - timedelta(hours=hours))
    return now, member


def kept() -> set[str]:
    return set(IdempotencyRecord.objects.values_list("key", flat=True))


def test_records_older_than_48_hours_are_purged_and_younger_ones_kept(aged):
    now, _ = aged
    result = idempotency_purge(as_of=now)
    assert result.rows == 3
    assert kept() == {"k-1h", "k-47h"}
    assert idempotency_purge(as_of=now).rows == 0  # a second run finds nothing


def test_the_retention_is_a_setting(aged, settings):
    now, _ = aged
    settings.IDEMPOTENCY_RETENTION_HOURS = 24 * 7
    assert idempotency_purge(as_of=now).rows == 1
    assert kept() == {"k-1h", "k-47h", "k-49h", "k-72h"}


def test_a_retention_below_the_contracts_24_hours_is_refused(settings):
    settings.IDEMPOTENCY_RETENTION_HOURS = 2
    found = [m for m in checks.run_checks() if m.id == "core.E001"]
    assert found and "24 hours" in found[0].msg
    with pytest.raises(ValueError, match="at least 24 hours"):
        idempotency_purge(as_of=timezone.now())
    settings.IDEMPOTENCY_RETENTION_HOURS = 48
    assert not [m for m in checks.run_checks() if m.id == "core.E001"]


def test_the_purge_goes_in_batches(aged):
    now, _ = aged
    result = idempotency_purge(as_of=now, batch_size=2)
    assert (result.rows, result.batches) == (3, 2)
    assert kept() == {"k-1h", "k-47h"}


def test_max_batches_stops_a_run_that_the_next_one_finishes(aged):
    now, _ = aged
    assert idempotency_purge(as_of=now, batch_size=1, max_batches=1).rows == 1
    assert len(kept()) == 4
    assert idempotency_purge(as_of=now, batch_size=1).rows == 2
    assert kept() == {"k-1h", "k-47h"}


def test_the_command_runs_as_of_a_given_moment(aged):
    now, _ = aged
    out = StringIO()
    # Two days later, the 1-hour-old record is 49 hours old as well.
    call_command(
        "idempotency_purge", "--as-of", (now + timedelta(hours=48)).isoformat(), stdout=out
    )
    assert out.getvalue().startswith("idempotency_purge: 5 rows in 1 batches")
    assert kept() == set()


def test_a_key_kept_replays_and_a_purged_key_is_a_new_request(api, make_member, aged):
    now, member = aged
    idempotency_purge(as_of=now)
    replay = adjust(api, member, "k-47h")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    fresh = adjust(api, member, "k-49h")
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh


def test_the_job_is_scheduled_hourly():
    from core.jobs import jobs, schedules

    spec = jobs()["idempotency_purge"]
    assert spec.task_name == "core.idempotency_purge"
    assert schedules()["idempotency keys: purge"] == ("core.idempotency_purge", {"minute": "55"})
