"""Writing to the outbox: call inside the transaction of what happened."""

from __future__ import annotations

from typing import Any

from core.models import OutboxEvent


def outbox_add(*, topic: str, dedupe_key: str, member_id: int | None = None,
               payload: dict[str, Any] | None = None) -> None:
    """Record an event once: a second call with the same key changes nothing."""
    OutboxEvent.objects.bulk_create(
        [OutboxEvent(topic=topic, dedupe_key=dedupe_key, member_id=member_id, payload=payload or {})],
        ignore_conflicts=True,
    )
