"""Webhooks end to end: outbox events fanned out to the webhooks that want
them and POSTed to a real receiver on 127.0.0.1 in this process, their
signatures checked by the reference implementation (`standardwebhooks`)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as Verifier

from checkout.services import member_enrol
from core.models import OutboxEvent
from integrations import webhooks
from integrations.models import Webhook, WebhookAttempt, WebhookDelivery
from members.models import Member
from tests.helpers import SYSTEM, buy
from tests.integrations.receiver import Receiver

URL = "/api/v1/webhooks"


@pytest.fixture
def receiver():
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _quick(settings, demo):
    # The demo club's own events (its members' enrolments) are not this test's.
    OutboxEvent.objects.filter(delivered_at__isnull=True).update(delivered_at=timezone.now())
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 0, 0]
    settings.WEBHOOK_TIMEOUT_SECONDS = 2


def subscribe(make_api, url, events=("*",), markets=None):
    api = make_api(scopes=["webhooks:manage"], markets=markets)
    response = api.post(URL, {"url": url, "events": list(events)}, format="json")
    assert response.status_code == 201, response.content
    return api, response.json()


def deliver():
    """What the beat's dispatch and the senders it starts do, in this process."""
    webhooks.webhooks_dispatch(send=False)
    for webhook_id in webhooks.webhooks_due():
        webhooks.webhook_send(webhook_id=webhook_id)


def verified(secret, received):
    """The body, as the reference implementation verifies it."""
    return Verifier(secret).verify(received.body, received.headers)


@pytest.mark.django_db
def test_a_purchase_is_delivered_signed(make_api, make_member, receiver):
    _, hook = subscribe(make_api, receiver.url("/crm"), events=["points.earned"])
    member = make_member()
    body = buy(member, "250.00")
    deliver()
    [received] = receiver.at("/crm")
    event = verified(hook["secret"], received)
    assert event["type"] == "points.earned"
    assert received.headers["webhook-id"] == event["id"]
    assert set(event) == {"id", "type", "created_at", "data"}
    assert event["data"] == {
        "member_number": member.member_number,
        "purchase_id": body["purchase_id"],
        "receipt_id": body["receipt_id"],
        "store_code": "SE-001",
        "points": body["points_earned"],
        "status": body["points_status"],
        "available_on": body["available_on"],
    }
    delivery = WebhookDelivery.objects.get(webhook_id=hook["id"])
    assert delivery.status == "delivered" and delivery.attempts == 1
    [attempt] = WebhookAttempt.objects.filter(delivery=delivery)
    assert attempt.ok and attempt.status_code == 200 and attempt.number == 1
    # Delivered once: another round sends nothing.
    deliver()
    assert len(receiver.at("/crm")) == 1


@pytest.mark.django_db
def test_a_bad_signature_is_refused_by_the_reference(make_api, make_member, receiver):
    _, hook = subscribe(make_api, receiver.url("/crm"))
    buy(make_member())
    deliver()
    received = receiver.at("/crm")[0]
    other = webhooks.secret_new()
    with pytest.raises(Exception):  # noqa: B017 - the library's WebhookVerificationError
        Verifier(other).verify(received.body, received.headers)


@pytest.mark.django_db
def test_fails_twice_then_accepted_three_attempts_one_id(make_api, make_member, receiver):
    receiver.answers["/flaky"] = [500, 503, 200]
    _, hook = subscribe(make_api, receiver.url("/flaky"), events=["points.earned"])
    buy(make_member())
    deliver()
    attempts = receiver.at("/flaky")
    assert len(attempts) == 3
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    for attempt in attempts:
        verified(hook["secret"], attempt)
    delivery = WebhookDelivery.objects.get(webhook_id=hook["id"])
    assert delivery.status == "delivered" and delivery.attempts == 3
    log = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [(a.number, a.ok, a.status_code) for a in log] == [
        (1, False, 500),
        (2, False, 503),
        (3, True, 200),
    ]


@pytest.mark.django_db
def test_retries_wait_for_the_schedule_then_fail_and_resend(
    make_api, make_member, receiver, settings
):
    settings.WEBHOOK_RETRY_SCHEDULE = [300]
    receiver.answers["/down"] = [500, 500, 200]
    _, hook = subscribe(make_api, receiver.url("/down"), events=["points.earned"])
    buy(make_member())
    deliver()
    delivery = WebhookDelivery.objects.get(webhook_id=hook["id"])
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=290)
    deliver()  # not due yet
    assert len(receiver.at("/down")) == 1
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    deliver()
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 2
    assert delivery.last_status_code == 500
    # Staff send it again (the admin's action).
    assert webhooks.deliveries_resend(delivery_ids=[delivery.pk]) == 1
    deliver()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert len(receiver.at("/down")) == 3


@pytest.mark.django_db
def test_a_deleted_webhook_receives_nothing_more(make_api, make_member, receiver):
    api, hook = subscribe(make_api, receiver.url("/gone"))
    member = make_member()
    buy(member)
    webhooks.webhooks_dispatch(send=False)  # its delivery is waiting
    assert WebhookDelivery.objects.filter(webhook_id=hook["id"]).exists()
    assert api.delete(f"{URL}/{hook['id']}").status_code == 204
    buy(member)
    deliver()
    assert receiver.at("/gone") == []
    assert not WebhookDelivery.objects.filter(webhook_id=hook["id"]).exists()


@pytest.mark.django_db
def test_a_client_bound_to_no_never_hears_of_se(make_api, make_member, receiver):
    subscribe(make_api, receiver.url("/no"), markets=["NO"])
    subscribe(make_api, receiver.url("/se"), markets=["SE"])
    se = make_member(market="SE")
    buy(se)
    member_enrol(actor=SYSTEM, market_code="NO", email="nordmann@example.com")
    deliver()
    heard_no = [json.loads(r.body)["data"]["member_number"] for r in receiver.at("/no")]
    heard_se = [json.loads(r.body)["data"]["member_number"] for r in receiver.at("/se")]
    enrolled = Member.objects.get(email="nordmann@example.com")
    assert heard_no == [enrolled.member_number]
    assert heard_se == [se.member_number]


@pytest.mark.django_db
def test_an_event_of_a_rolled_back_transaction_is_never_sent(make_api, make_member, receiver):
    subscribe(make_api, receiver.url("/crm"))
    member = make_member()
    with pytest.raises(RuntimeError), transaction.atomic():
        buy(member)
        assert OutboxEvent.objects.filter(member=member, topic="points.earned").exists()
        raise RuntimeError("the till crashed")
    assert not OutboxEvent.objects.filter(member=member).exists()
    deliver()
    assert receiver.at("/crm") == []
    buy(member)  # what commits is sent
    deliver()
    assert [json.loads(r.body)["type"] for r in receiver.at("/crm")] == ["points.earned"]


@pytest.mark.django_db
def test_only_the_subscribed_types_are_sent(make_api, make_member, receiver):
    subscribe(make_api, receiver.url("/tiers"), events=["tier.changed"])
    buy(make_member())
    deliver()
    assert receiver.at("/tiers") == []


@pytest.mark.django_db
def test_delivery_rechecks_the_address(make_api, make_member, receiver, settings):
    _, hook = subscribe(make_api, receiver.url("/crm"))
    buy(make_member())
    settings.WEBHOOKS_ALLOW_PRIVATE = False  # e.g. the name now resolves to 127.0.0.1
    settings.WEBHOOK_RETRY_SCHEDULE = []
    deliver()
    assert receiver.at("/crm") == []
    delivery = WebhookDelivery.objects.get(webhook_id=hook["id"])
    assert delivery.status == "failed" and delivery.last_error.startswith("refused")


@pytest.mark.django_db
def test_the_purge_keeps_the_backlog_bounded(make_api, make_member, receiver, settings):
    settings.WEBHOOK_RETENTION_DAYS = 7
    _, hook = subscribe(make_api, receiver.url("/crm"))
    buy(make_member())
    deliver()
    assert WebhookDelivery.objects.filter(webhook_id=hook["id"], status="delivered").count() == 1
    assert webhooks.webhooks_purge(as_of=timezone.now()).rows == 0
    later = timezone.now() + timedelta(days=8)
    result = webhooks.webhooks_purge(as_of=later)
    assert result.rows >= 2
    assert not WebhookDelivery.objects.filter(webhook_id=hook["id"]).exists()
    assert not OutboxEvent.objects.filter(delivered_at__lt=later - timedelta(days=7)).exists()


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_never_answers_does_not_delay_another(
    make_api, make_member, receiver, settings
):
    settings.WEBHOOK_TIMEOUT_SECONDS = 3
    receiver.answers["/dead"] = "sleep"
    _, dead = subscribe(make_api, receiver.url("/dead"))
    _, live = subscribe(make_api, receiver.url("/live"))
    member = make_member()
    for _ in range(5):
        buy(member)
    webhooks.webhooks_dispatch(send=False)
    assert set(webhooks.webhooks_due()) == {dead["id"], live["id"]}

    # The dispatcher starts one sender per webhook (a Celery task each); here,
    # a thread each.
    def send(webhook_id):
        try:
            webhooks.webhook_send(webhook_id=webhook_id)
        finally:
            connection.close()

    started = time.monotonic()
    dead_sender = threading.Thread(target=send, args=(dead["id"],))
    dead_sender.start()
    time.sleep(0.2)  # the dead receiver holds its first request
    assert len(receiver.at("/dead")) == 1
    live_sender = threading.Thread(target=send, args=(live["id"],))
    live_sender.start()
    live_sender.join(timeout=10)
    took = time.monotonic() - started
    live_got = receiver.at("/live")
    assert len(live_got) == 5, len(live_got)
    assert took < 2.5, took  # all five, while the dead one still waits for its first answer
    assert dead_sender.is_alive()
    receiver.release.set()
    dead_sender.join(timeout=30)
    assert WebhookDelivery.objects.filter(webhook_id=live["id"], status="delivered").count() == 5
    assert Webhook.objects.filter(pk=dead["id"]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_commit_that_wrote_events_queues_one_dispatch(make_member, settings, monkeypatch):
    """Real commits (a transactional test): the dispatch is queued after
    the commit, once for a burst, never for a rollback."""
    settings.WEBHOOK_DISPATCH_ON_COMMIT = True
    queued = []
    monkeypatch.setattr(webhooks.webhooks_dispatch.task, "delay", lambda: queued.append(1))
    member = make_member()
    webhooks.webhooks_dispatch(send=False)  # the demo club's events; clears the flag
    with pytest.raises(RuntimeError), transaction.atomic():
        buy(member)
        raise RuntimeError("rolled back")
    assert queued == []
    with transaction.atomic():
        buy(member)
        buy(member)
        assert queued == []  # not before the commit
    assert queued == [1]
    buy(member)  # a dispatch is queued and has not started: none more
    assert queued == [1]
    webhooks.webhooks_dispatch(send=False)  # it starts
    buy(member)
    assert queued == [1, 1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_one_sender_per_webhook_at_a_time(make_api, make_member, receiver):
    _, hook = subscribe(make_api, receiver.url("/crm"))
    buy(make_member())
    webhooks.webhooks_dispatch(send=False)
    assert webhooks._sender_lock(hook["id"])  # a sender is at work (this connection)
    made = []

    def second():
        try:
            made.append(webhooks.webhook_send(webhook_id=hook["id"]))
        finally:
            connection.close()

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=10)
    assert made == [0] and receiver.at("/crm") == []
    webhooks._sender_unlock(hook["id"])
    assert webhooks.webhook_send(webhook_id=hook["id"]) >= 1
    assert len(receiver.at("/crm")) >= 1
