"""Idempotency-Key handling, per API.md.

The key is claimed in a short transaction of its own, so that a second
request with the same key sees it at once. The work then runs in a
transaction that first locks the claim row and finally stores the answer
in it: the booking and the stored answer commit together or not at all. A
request that finds the row locked answers 409 request_in_progress; one that
finds it unlocked and unanswered (the first run died) runs the work itself.

Records are kept IDEMPOTENCY_RETENTION_HOURS (48 by default; the contract
promises at least 24) and then deleted by the `idempotency_purge` job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
from celery.schedules import crontab
from django.conf import settings
from django.core import checks
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone
from rest_framework.response import Response

from core.auth import Client
from core.errors import (
    DomainError,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
    RequestInProgress,
    ValidationFailed,
    problem,
)
from core.jobs import JobResult, Progress, job
from core.models import IdempotencyRecord

# An action answers (status, body, replayed): replayed when the service
# itself recognised a repeat (a purchase's receipt id).
Action = Callable[[], tuple[int, dict[str, Any], bool]]
REPLAY_HEADER = "Idempotent-Replayed"


def body_hash(method: str, path: str, data: Any) -> str:
    canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def replay_response(status: int, body: dict[str, Any]) -> Response:
    response = Response(body, status=status, headers={REPLAY_HEADER: "true"})
    if status >= 400:
        response.content_type = "application/problem+json"
    return response


def run_idempotent(request: Any, *, required: bool, action: Action) -> Response:
    client: Client = request.user
    key = request.headers.get("Idempotency-Key")
    if key is None:
        if required:
            raise IdempotencyKeyRequired("This call needs an Idempotency-Key header.")
        status, body, replayed = action()
        return replay_response(status, body) if replayed else Response(body, status=status)
    if not 1 <= len(key) <= 255:
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 characters.",
            errors={"Idempotency-Key": ["Must be 1 to 255 characters."]},
        )
    digest = body_hash(request.method, request.path, request.data)
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                client_id=client.id,
                key=key,
                method=request.method,
                path=request.path[:255],
                body_hash=digest,
            )
    except IntegrityError:
        record = IdempotencyRecord.objects.get(client_id=client.id, key=key)
        if record.body_hash != digest:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with another request body."
            ) from None
    try:
        with transaction.atomic():
            try:
                locked = (
                    IdempotencyRecord.objects.select_for_update(nowait=True)
                    .filter(pk=record.pk)
                    .values("response_status", "response_body")
                    .get()
                )
            except OperationalError:
                raise RequestInProgress(
                    "A request with this Idempotency-Key is being processed."
                ) from None
            if locked["response_status"] is not None:
                return replay_response(locked["response_status"], locked["response_body"])
            status, body, replayed = action()
            IdempotencyRecord.objects.filter(pk=record.pk).update(
                response_status=status, response_body=body, completed_at=timezone.now()
            )
    except DomainError as exc:
        if isinstance(exc, RequestInProgress):
            raise
        # The work rolled back; remember the refusal so a retry gets the same answer.
        IdempotencyRecord.objects.filter(pk=record.pk, response_status__isnull=True).update(
            response_status=exc.status,
            response_body=problem(exc.status, exc.code, exc.title, exc.detail, exc.errors),
            completed_at=timezone.now(),
        )
        raise
    return replay_response(status, body) if replayed else Response(body, status=status)


# The contract keeps a key at least this long: a shorter setting is refused.
MIN_RETENTION_HOURS = 24


@checks.register()
def retention_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A retention shorter than the contract's is refused at start."""
    hours = settings.IDEMPOTENCY_RETENTION_HOURS
    if hours < MIN_RETENTION_HOURS:
        return [
            checks.Error(
                f"IDEMPOTENCY_RETENTION_HOURS is {hours}; the contract keeps Idempotency-Keys "
                f"at least {MIN_RETENTION_HOURS} hours.",
                id="core.E001",
            )
        ]
    return []


def retention_hours() -> int:
    hours = int(settings.IDEMPOTENCY_RETENTION_HOURS)
    if hours < MIN_RETENTION_HOURS:
        raise ValueError(
            f"IDEMPOTENCY_RETENTION_HOURS is {hours}: the contract keeps keys at least "
            f"{MIN_RETENTION_HOURS} hours"
        )
    return hours


@job(title="idempotency keys: purge", schedule=crontab(minute="55"), unit="keys")
def idempotency_purge(
    *,
    as_of: datetime,
    batch_size: int = 10_000,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Delete the Idempotency-Key records older than
    IDEMPOTENCY_RETENTION_HOURS (48 by default): a key and its stored answer
    are not kept forever. In batches, each its own short transaction, oldest
    first on the created_at index."""
    result = JobResult("idempotency_purge")
    before = as_of - timedelta(hours=retention_hours())
    while max_batches is None or result.batches < max_batches:
        with transaction.atomic():
            ids = list(
                IdempotencyRecord.objects.filter(created_at__lt=before)
                .order_by("created_at")
                .values_list("id", flat=True)[:batch_size]
            )
            deleted = IdempotencyRecord.objects.filter(id__in=ids).delete()[0] if ids else 0
        if not deleted:
            break
        result.rows += deleted
        result.batches += 1
        if progress:
            progress(deleted)
    return result
