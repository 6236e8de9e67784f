"""Writing to the outbox: call inside the transaction of what happened.

The one writer of `core_outboxevent`. Each event is recorded once, by its
`dedupe_key`: recording it again changes nothing.

- `outbox_add`: one event, from a request or a per-member path;
- `outbox_add_after`: one event and the write it tells of, in one statement
  (PostgreSQL: the purchase);
- `outbox_add_many`: a batch of events built in Python, in one statement;
- `outbox_add_select`: the events a SELECT yields, in one statement, for a
  job's set-based batch (PostgreSQL);
- `outbox_add_json`: the events a statement answered as one JSON array
  (json_agg), in one statement (PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from core.models import OutboxEvent

# Called once after each commit that wrote events (integrations registers the
# webhooks' dispatch here: core does not import the layers above it).
_on_written: list[Callable[[], None]] = []


def on_written(callback: Callable[[], None]) -> None:
    """Register `callback` to run after every commit that wrote events."""
    if callback not in _on_written:
        _on_written.append(callback)


def _after_commit() -> None:
    for callback in _on_written:
        callback()


def _written() -> None:
    """Once per transaction: the callbacks run when it commits, never when
    it rolls back."""
    if not _on_written:
        return
    if any(func is _after_commit for _, func, _ in connection.run_on_commit):
        return
    transaction.on_commit(_after_commit, robust=True)


@dataclass(frozen=True)
class Event:
    topic: str
    dedupe_key: str
    member_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def outbox_add(
    *,
    topic: str,
    dedupe_key: str,
    member_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Record an event once: a second call with the same key changes nothing."""
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(
                topic=topic, dedupe_key=dedupe_key, member_id=member_id, payload=payload or {}
            )
        ],
        ignore_conflicts=True,
    )
    _written()


_INSERT_SQL = """
INSERT INTO core_outboxevent (topic, dedupe_key, member_id, payload, created_at)
SELECT e.topic, e.dedupe_key, e.member_id, e.payload, %(outbox_now)s
FROM ({select}) AS e(topic, dedupe_key, member_id, payload)
ON CONFLICT (dedupe_key) DO NOTHING
"""

# One JSON text, rather than an array of them: thousands of payloads travel
# as one parameter, not as an array literal quoted element by element.
_JSON_SELECT = """
SELECT e->>'topic', e->>'dedupe_key', (e->>'member_id')::bigint, (e->'payload')::jsonb
FROM json_array_elements(%(outbox_events)s::json) AS e
"""


def outbox_add_select(
    select: str, params: Mapping[str, Any], *, now: datetime | None = None
) -> int:
    """Record the events that `select` yields, each as (topic, dedupe_key,
    member_id, payload jsonb), in one INSERT ... SELECT; those recorded
    before are skipped. `params` are named (%(name)s). PostgreSQL only: the
    jobs' set-based batches. Answers how many were new."""
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_SQL.format(select=select), {**params, "outbox_now": now or timezone.now()}
        )
        written = max(cursor.rowcount, 0)
    if written:
        _written()
    return written


def outbox_add_json(events: str, *, now: datetime | None = None) -> int:
    """Record the events of a JSON array of {"topic", "dedupe_key",
    "member_id", "payload"} objects, as a statement answers them with
    json_agg(...)::text, in one statement; each once. PostgreSQL only.
    Answers how many were new."""
    return outbox_add_select(_JSON_SELECT, {"outbox_events": events}, now=now)


_AFTER_SQL = """
WITH done AS ({statement})
INSERT INTO core_outboxevent (topic, dedupe_key, member_id, payload, created_at)
VALUES (%(outbox_topic)s, %(outbox_key)s, %(outbox_member)s, %(outbox_payload)s::jsonb,
        %(outbox_now)s)
ON CONFLICT (dedupe_key) DO NOTHING
"""


def outbox_add_after(
    statement: str, params: Mapping[str, Any], *, event: Event, now: datetime | None = None
) -> None:
    """Run `statement` (one INSERT, UPDATE or DELETE, named parameters) and
    record `event` once, in one statement: a hot path's write and its event
    in one round trip. PostgreSQL only."""
    with connection.cursor() as cursor:
        cursor.execute(
            _AFTER_SQL.format(statement=statement),
            {
                **params,
                "outbox_topic": event.topic,
                "outbox_key": event.dedupe_key,
                "outbox_member": event.member_id,
                "outbox_payload": json.dumps(event.payload, cls=DjangoJSONEncoder),
                "outbox_now": now or timezone.now(),
            },
        )
        written = max(cursor.rowcount, 0)
    if written:
        _written()


def outbox_add_many(events: Iterable[Event], *, now: datetime | None = None) -> int:
    """Record a batch of events in one statement, each once. Answers how
    many were new."""
    events = list(events)
    if not events:
        return 0
    if connection.vendor == "postgresql":
        return outbox_add_json(
            json.dumps(
                [
                    {
                        "topic": e.topic,
                        "dedupe_key": e.dedupe_key,
                        "member_id": e.member_id,
                        "payload": e.payload,
                    }
                    for e in events
                ],
                cls=DjangoJSONEncoder,
            ),
            now=now,
        )
    keys = [e.dedupe_key for e in events]
    known = set(
        OutboxEvent.objects.filter(dedupe_key__in=keys).values_list("dedupe_key", flat=True)
    )
    new = [
        OutboxEvent(
            topic=e.topic,
            dedupe_key=e.dedupe_key,
            member_id=e.member_id,
            payload=json.loads(json.dumps(e.payload, cls=DjangoJSONEncoder)),
        )
        for e in {e.dedupe_key: e for e in events if e.dedupe_key not in known}.values()
    ]
    OutboxEvent.objects.bulk_create(new, ignore_conflicts=True)
    if new:
        _written()
    return len(new)
