"""Webhooks: subscriptions, the fan-out of outbox events to them, and their
delivery with Standard Webhooks signatures.

The outbox (core/outbox.py) holds every event, written in the transaction
of its change: an event of a rolled-back transaction never exists, so it is
never sent. Delivery then goes in two steps, both jobs of core.jobs:

- `webhooks_dispatch` (beat every few seconds, and enqueued on commit when
  events are written): the fan-out takes the events not yet handed on
  (`OutboxEvent.delivered_at` is null, its partial index), makes one
  `WebhookDelivery` per webhook that wants the event's type and sees the
  event's member's market, and marks the events handed on; then it enqueues
  one `webhook_send` task per webhook with deliveries due.
- `webhook_send(webhook_id)`: leases up to WEBHOOK_BATCH due deliveries of
  that one webhook (its in-flight limit) and POSTs them, each with a
  timeout. A slow or dead receiver holds only its own task and its own
  deliveries: the others' tasks run beside it.

A 2xx answer delivers; anything else schedules the next attempt after the
delays of WEBHOOK_RETRY_SCHEDULE, and after the last the delivery is
failed (staff can send it again from the admin). The SSRF check runs when a
webhook is made and again before every POST (a DNS answer can change).
`webhooks_purge` deletes delivered deliveries and handed-on events older
than WEBHOOK_RETENTION_DAYS.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from core.auth import Client
from core.errors import AlreadyExists, NotFound, ValidationFailed
from core.jobs import JobResult, Progress, job
from core.models import ApiClient, OutboxEvent
from core.outbox import on_written
from integrations.models import Webhook, WebhookAttempt, WebhookDelivery
from members.models import Member

logger = logging.getLogger(__name__)

# The event types of the contract (API.md, "Webhooks").
EVENT_TYPES = (
    "member.enrolled",
    "member.updated",
    "member.erased",
    "points.earned",
    "points.returned",
    "points.redeemed",
    "points.expiring_soon",
    "points.expired",
    "tier.changed",
    "benefit.used",
    "voucher.issued",
    "voucher.redeemed",
    "mission.completed",
    "gift.given",
    "nps.answered",
)

FANOUT_BATCH = 2000


# --- subscriptions ------------------------------------------------------------------


def secret_new() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def url_check(url: str) -> None:
    """https or http, a host, and (unless WEBHOOKS_ALLOW_PRIVATE) a host whose
    every address is public. Raises ValidationFailed."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationFailed(
            "The URL must be http or https, with a host.", errors={"url": ["Invalid URL."]}
        )
    if settings.WEBHOOKS_ALLOW_PRIVATE:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError):
        raise ValidationFailed(
            "The URL's host does not resolve.", errors={"url": ["Host does not resolve."]}
        ) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise ValidationFailed(
                "The URL resolves to a loopback, private or link-local address.",
                errors={"url": ["Address not allowed."]},
            )


def events_check(events: list[str]) -> list[str]:
    if not events:
        raise ValidationFailed("Name at least one event.", errors={"events": ["Empty."]})
    if "*" in events:
        if len(events) > 1:
            raise ValidationFailed(
                '"*" stands alone.', errors={"events": ['"*" means all events; name no others.']}
            )
        return ["*"]
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise ValidationFailed(
            f"Unknown events: {', '.join(unknown)}.",
            errors={"events": [f"Unknown event: {name}." for name in unknown]},
        )
    return list(dict.fromkeys(events))


def webhook_create(
    *, client: Client, url: str, events: list[str], description: str = ""
) -> Webhook:
    """A webhook of the client; its secret is on the answer, and only there."""
    url_check(url)
    events = events_check(events)
    with transaction.atomic():
        if Webhook.objects.filter(client_id=client.id, url=url).exists():
            raise AlreadyExists("This client has a webhook with this URL.")
        webhook = Webhook(
            client_id=client.id,
            url=url,
            events=events,
            description=description,
            secret=secret_new(),
        )
        webhook.save()
    return webhook


def webhooks_of(*, client: Client) -> list[Webhook]:
    return list(Webhook.objects.filter(client_id=client.id).order_by("id"))


def webhook_delete(*, client: Client, webhook_id: int) -> None:
    """Gone with its pending deliveries: it receives nothing more."""
    deleted, _ = Webhook.objects.filter(client_id=client.id, pk=webhook_id).delete()
    if not deleted:
        raise NotFound("No such webhook.")


# --- signing -------------------------------------------------------------------------


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: v1, and base64 of HMAC-SHA256 over id.timestamp.body."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def event_id(event_pk: int) -> str:
    return f"evt_{event_pk}"


def event_body(event: OutboxEvent) -> bytes:
    return json.dumps(
        {
            "id": event_id(event.pk),
            "type": event.topic,
            "created_at": event.created_at.isoformat(),
            "data": event.payload,
        },
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    ).encode()


# --- the fan-out ---------------------------------------------------------------------


def _subscribers() -> list[tuple[Webhook, frozenset[int] | None]]:
    """Active webhooks and their client's markets (None: every market)."""
    webhooks = list(
        Webhook.objects.filter(active=True, client__revoked_at__isnull=True).order_by("id")
    )
    markets: dict[int, set[int]] = {}
    for client_id, market_id in ApiClient.markets.through.objects.filter(
        apiclient_id__in={w.client_id for w in webhooks}
    ).values_list("apiclient_id", "market_id"):
        markets.setdefault(client_id, set()).add(market_id)
    return [
        (w, frozenset(markets[w.client_id]) if w.client_id in markets else None) for w in webhooks
    ]


def fan_out(
    *,
    now: datetime | None = None,
    batch_size: int = FANOUT_BATCH,
    touched: set[int] | None = None,
) -> int:
    """Hand the waiting events on: one delivery per webhook that wants each
    (the webhooks that got one are added to `touched`). Answers how many
    events were handed on (0: none waiting)."""
    now = now or timezone.now()
    with transaction.atomic():
        events = list(
            OutboxEvent.objects.filter(delivered_at__isnull=True)
            .order_by("created_at", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", "topic", "member_id")[:batch_size]
        )
        if not events:
            return 0
        subscribers = _subscribers()
        deliveries: list[WebhookDelivery] = []
        if subscribers:
            member_market = dict(
                Member.objects.filter(
                    id__in={m for _, _, m in events if m is not None}
                ).values_list("id", "market_id")
            )
            for pk, topic, member_id in events:
                if topic not in EVENT_TYPES:  # outside the contract: kept in, not sent
                    continue
                market = member_market.get(member_id) if member_id is not None else None
                for webhook, markets in subscribers:
                    if not webhook.wants(topic):
                        continue
                    if markets is not None and member_id is not None and market not in markets:
                        continue
                    deliveries.append(
                        WebhookDelivery(webhook=webhook, event_id=pk, next_attempt_at=now)
                    )
        WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True, batch_size=1000)
        if touched is not None:
            touched.update(d.webhook_id for d in deliveries)
        OutboxEvent.objects.filter(id__in=[pk for pk, _, _ in events]).update(delivered_at=now)
    return len(events)


def webhooks_due(*, now: datetime | None = None) -> list[int]:
    """Webhooks with deliveries due that no sender holds."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
        )
        .exclude(leased_until__gt=now)
        .values_list("webhook_id", flat=True)
        .distinct()
        .order_by()
    )


@job(title="webhooks: dispatch", schedule=5, task="integrations.webhooks_dispatch", unit="events")
def webhooks_dispatch(
    *,
    as_of: datetime,
    progress: Progress | None = None,
    max_batches: int | None = None,
    send: bool = True,
) -> JobResult:
    """Hand new outbox events on to the webhooks that want them, and start a
    sender per webhook with deliveries due."""
    result = JobResult("webhooks_dispatch")
    cache.delete(QUEUED_KEY)
    while max_batches is None or result.batches < max_batches:
        touched: set[int] = set()
        done = fan_out(touched=touched)
        if not done:
            break
        result.rows += done
        result.batches += 1
        if progress:
            progress(done)
        if send:
            # The senders start while a long backlog is still being handed on
            # (a sender already at work for its webhook returns at once).
            for webhook_id in sorted(touched):
                webhook_send_task.delay(webhook_id)
    if send:
        # And those with retries due.
        for webhook_id in webhooks_due():
            webhook_send_task.delay(webhook_id)
    return result


# Set while a dispatch is queued and not yet started: the commits meanwhile
# enqueue none (the queued one will see their events); the dispatch clears
# it before it looks, so a commit after that enqueues the next. No event
# waits for the beat, and a burst of commits queues one dispatch.
QUEUED_KEY = "webhooks:dispatch-queued"
# After the cache or broker failed, commits leave them alone this long (a
# Redis that hangs would cost every commit a timeout); a warning at most
# every UNQUEUED_LOG_SECONDS.
UNQUEUED_PAUSE_SECONDS = 5.0
UNQUEUED_LOG_SECONDS = 10.0
_unqueued_failed_at = -UNQUEUED_PAUSE_SECONDS
_unqueued_logged_at = -UNQUEUED_LOG_SECONDS


def forget_dispatch_failures() -> None:
    """Try the broker again at once (tests; the pause ends by itself)."""
    global _unqueued_failed_at, _unqueued_logged_at
    _unqueued_failed_at = -UNQUEUED_PAUSE_SECONDS
    _unqueued_logged_at = -UNQUEUED_LOG_SECONDS


def dispatch_soon() -> None:
    """After a commit that wrote events (core.outbox calls it): a dispatch
    now rather than at the next beat. Off in the tests (no broker there)."""
    global _unqueued_failed_at, _unqueued_logged_at
    if not settings.WEBHOOK_DISPATCH_ON_COMMIT:
        return
    if time.monotonic() - _unqueued_failed_at < UNQUEUED_PAUSE_SECONDS:
        return  # the beat's dispatch will find the events
    queued = False
    try:
        queued = cache.add(QUEUED_KEY, 1, timeout=60)
        if queued:
            webhooks_dispatch.task.delay()
    except Exception as exc:  # the cache or the broker is down (kombu, redis, OS errors)
        # Nothing is lost: the events wait in the outbox for the beat's
        # dispatch once the broker is back. The purchase has committed.
        _unqueued_failed_at = time.monotonic()
        if _unqueued_failed_at - _unqueued_logged_at >= UNQUEUED_LOG_SECONDS:
            _unqueued_logged_at = _unqueued_failed_at
            logger.warning(
                "webhooks dispatch not queued, the outbox keeps the events: %s: %s",
                type(exc).__name__,
                exc,
            )
        if queued:
            with contextlib.suppress(Exception):
                cache.delete(QUEUED_KEY)


def dispatch_on_commit() -> None:
    transaction.on_commit(dispatch_soon, robust=True)


# --- sending -------------------------------------------------------------------------


def _retry_delay(attempts: int) -> int | None:
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    return schedule[attempts - 1] if attempts - 1 < len(schedule) else None


def _lease(webhook_id: int, now: datetime, batch: int) -> list[int]:
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.filter(
                webhook_id=webhook_id,
                status=WebhookDelivery.Status.PENDING,
                next_attempt_at__lte=now,
            )
            .exclude(leased_until__gt=now)
            .order_by("next_attempt_at", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:batch]
        )
        WebhookDelivery.objects.filter(id__in=ids).update(
            leased_until=now + timedelta(seconds=timeout * max(len(ids), 1) + 60)
        )
    return ids


def refusal(url: str) -> str:
    """Why the URL may not be sent to now ("" if it may): the SSRF check
    again, for the DNS answer can have changed since the webhook was made."""
    try:
        url_check(url)
    except ValidationFailed as exc:
        return f"refused: {exc.detail}"
    return ""


def post(
    webhook: Webhook, event: OutboxEvent, session: requests.Session, refused: str = ""
) -> tuple[int | None, str]:
    """One signed POST: (status code or None, error)."""
    if refused:
        return None, refused
    body = event_body(event)
    msg_id = event_id(event.pk)
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "Lojal-Webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(webhook.secret, msg_id, timestamp, body),
    }
    try:
        answer = session.post(
            webhook.url,
            data=body,
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
        answer.close()
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"[:300]
    return answer.status_code, ""


# A sender looks again whether its webhook still exists this often, so that
# a deleted or switched-off webhook receives nothing more within a moment.
ALIVE_CHECK_SECONDS = 0.5


@dataclass
class _Outcome:
    delivery: WebhookDelivery
    code: int | None
    error: str
    duration_ms: int
    at: datetime


# The class of the advisory locks that make one sender per webhook at a time.
SENDER_LOCK_CLASS = 7013


def _sender_lock(webhook_id: int) -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [SENDER_LOCK_CLASS, webhook_id])
        return bool(cursor.fetchone()[0])


def _sender_unlock(webhook_id: int) -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [SENDER_LOCK_CLASS, webhook_id])


def _has_due(webhook_id: int) -> bool:
    now = timezone.now()
    return (
        WebhookDelivery.objects.filter(
            webhook_id=webhook_id,
            webhook__active=True,
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at__lte=now,
        )
        .exclude(leased_until__gt=now)
        .exists()
    )


def webhook_send(*, webhook_id: int, batch: int | None = None) -> int:
    """Send the due deliveries of one webhook until none is due. One sender
    per webhook at a time (a PostgreSQL advisory lock): a second returns at
    once, the first carries on. Once it lets go it looks again, so a
    delivery that fell due just then is not left for the beat. Answers how
    many attempts it made."""
    made = 0
    session = requests.Session()
    try:
        while _sender_lock(webhook_id):
            try:
                made += _send_due(webhook_id, batch or settings.WEBHOOK_BATCH, session)
            finally:
                _sender_unlock(webhook_id)
            if not _has_due(webhook_id):
                break
        return made
    finally:
        session.close()


def _send_due(webhook_id: int, batch: int, session: requests.Session) -> int:
    """A batch at a time (the webhook's in-flight limit), one POST after
    another; each batch's outcomes recorded in one transaction."""
    made = 0
    while True:
        webhook = Webhook.objects.filter(pk=webhook_id, active=True).first()
        if webhook is None:
            return made
        ids = _lease(webhook_id, timezone.now(), batch)
        if not ids:
            return made
        outcomes: list[_Outcome] = []
        refused = refusal(webhook.url)  # once per batch
        checked = time.monotonic()
        alive = True
        for delivery in (
            WebhookDelivery.objects.filter(id__in=ids)
            .select_related("event")
            .order_by("next_attempt_at", "id")
        ):
            if time.monotonic() - checked > ALIVE_CHECK_SECONDS:
                checked = time.monotonic()
                alive = Webhook.objects.filter(pk=webhook_id, active=True).exists()
                if not alive:
                    break
            started = time.monotonic()
            code, error = post(webhook, delivery.event, session, refused)
            duration = int((time.monotonic() - started) * 1000)
            outcomes.append(_Outcome(delivery, code, error, duration, timezone.now()))
        _record(outcomes)
        made += len(outcomes)
        if not alive:
            return made


def _record(outcomes: list[_Outcome]) -> None:
    """The deliveries' new state and the log's lines, in one transaction;
    deliveries deleted meanwhile (their webhook was) are left out."""
    if not outcomes:
        return
    delivered: dict[int, list[int]] = {}  # by status code
    attempts: list[WebhookAttempt] = []
    with transaction.atomic():
        present = set(
            WebhookDelivery.objects.select_for_update()
            .filter(id__in=[o.delivery.pk for o in outcomes])
            .values_list("id", flat=True)
        )
        for outcome in outcomes:
            delivery = outcome.delivery
            if delivery.pk not in present:
                continue
            ok = outcome.code is not None and 200 <= outcome.code < 300
            number = delivery.attempts + 1
            error = outcome.error or ("" if ok else f"HTTP {outcome.code}")
            attempts.append(
                WebhookAttempt(
                    delivery_id=delivery.pk,
                    webhook_id=delivery.webhook_id,
                    number=number,
                    at=outcome.at,
                    ok=ok,
                    status_code=outcome.code,
                    duration_ms=outcome.duration_ms,
                    error=error[:300],
                )
            )
            if ok and number == 1 and outcome.code is not None:
                delivered.setdefault(outcome.code, []).append(delivery.pk)
                continue
            fields: dict[str, Any] = {
                "attempts": number,
                "leased_until": None,
                "last_status_code": outcome.code,
                "last_error": error[:300],
            }
            if ok:
                fields.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=outcome.at)
            else:
                delay = _retry_delay(number)
                if delay is None:
                    fields["status"] = WebhookDelivery.Status.FAILED
                else:
                    fields["next_attempt_at"] = outcome.at + timedelta(seconds=delay)
            WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
        for code, ids in delivered.items():
            # The common case, one statement for the batch: delivered at the first attempt.
            WebhookDelivery.objects.filter(id__in=ids).update(
                status=WebhookDelivery.Status.DELIVERED,
                attempts=1,
                leased_until=None,
                last_status_code=code,
                last_error="",
                delivered_at=timezone.now(),
            )
        WebhookAttempt.objects.bulk_create(attempts, batch_size=1000)


@shared_task(
    name="integrations.webhook_send",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    time_limit=60 * 60,
    soft_time_limit=55 * 60,
)
def webhook_send_task(webhook_id: int) -> int:
    return webhook_send(webhook_id=webhook_id)


def deliveries_resend(*, delivery_ids: list[int]) -> int:
    """Failed (or delivered) deliveries go out again: a fresh retry schedule.
    Answers how many; a dispatch sends them."""
    count = WebhookDelivery.objects.filter(id__in=delivery_ids).update(
        status=WebhookDelivery.Status.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        leased_until=None,
        delivered_at=None,
    )
    if count:
        dispatch_on_commit()
    return count


# --- the purge -----------------------------------------------------------------------


@job(title="webhooks: purge", schedule=3600, task="integrations.webhooks_purge", unit="rows")
def webhooks_purge(
    *,
    as_of: datetime,
    batch_size: int = 10_000,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Delete delivered deliveries, and events handed on, older than
    WEBHOOK_RETENTION_DAYS: the backlog cannot grow without bound. Failed
    and pending deliveries stay (and keep their events)."""
    result = JobResult("webhooks_purge")
    before = as_of - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    while max_batches is None or result.batches < max_batches:
        with transaction.atomic():
            ids = list(
                WebhookDelivery.objects.filter(
                    status=WebhookDelivery.Status.DELIVERED, delivered_at__lt=before
                ).values_list("id", flat=True)[:batch_size]
            )
            WebhookAttempt.objects.filter(delivery_id__in=ids).delete()
            deliveries = WebhookDelivery.objects.filter(id__in=ids).delete()[0] if ids else 0
            event_ids = list(
                OutboxEvent.objects.filter(delivered_at__lt=before)
                .exclude(
                    id__in=WebhookDelivery.objects.exclude(
                        status=WebhookDelivery.Status.DELIVERED
                    ).values("event_id")
                )
                .values_list("id", flat=True)[:batch_size]
            )
            events = OutboxEvent.objects.filter(id__in=event_ids).delete()[0] if event_ids else 0
        if not deliveries and not events:
            break
        result.rows += deliveries + events
        result.batches += 1
        if progress:
            progress(deliveries + events)
    return result


# A dispatch after each commit that wrote events: this module is loaded by
# the URLs (integrations.apis) and by the worker (integrations.tasks).
on_written(dispatch_soon)
