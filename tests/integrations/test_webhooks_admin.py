"""Webhooks in the admin: add one (its secret shown once), its delivery log,
the deliveries' list by status, failed ones sent again."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from core.models import ApiClient, OutboxEvent
from integrations import webhooks
from integrations.models import Webhook, WebhookDelivery
from tests.helpers import buy
from tests.integrations.receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    running = Receiver().start()
    yield running
    running.stop()


def test_add_list_log_and_resend(admin_client, make_api, make_member, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = []
    OutboxEvent.objects.filter(delivered_at__isnull=True).update(delivered_at=timezone.now())
    client = ApiClient.objects.get(pk=make_api(scopes=["webhooks:manage"]).api_client.id)
    assert admin_client.get("/admin/integrations/webhook/add/").status_code == 200
    refused = admin_client.post(
        "/admin/integrations/webhook/add/",
        {"client": client.pk, "url": receiver.url("/x"), "events": '["nope"]', "active": "on"},
    )
    assert refused.status_code == 200 and not Webhook.objects.exists()
    answer = admin_client.post(
        "/admin/integrations/webhook/add/",
        {"client": client.pk, "url": receiver.url("/hook"), "events": '["*"]', "active": "on"},
        follow=True,
    )
    assert Webhook.objects.exists(), answer.context["adminform"].form.errors
    webhook = Webhook.objects.get()
    assert webhook.secret.startswith("whsec_")
    assert webhook.secret in answer.content.decode()  # shown once, on this page

    receiver.answers["/hook"] = [500, 200]
    buy(make_member())
    webhooks.webhooks_dispatch(send=False)
    webhooks.webhook_send(webhook_id=webhook.pk)
    delivery = WebhookDelivery.objects.get(webhook=webhook)
    assert delivery.status == "failed"

    assert admin_client.get("/admin/integrations/webhook/").status_code == 200
    page = admin_client.get(f"/admin/integrations/webhook/{webhook.pk}/change/")
    assert page.status_code == 200 and "500" in page.content.decode()
    assert webhook.secret not in page.content.decode()
    assert admin_client.get("/admin/integrations/webhookattempt/").status_code == 200
    listed = admin_client.get("/admin/integrations/webhookdelivery/?status__exact=failed")
    assert listed.status_code == 200 and f">{delivery.pk}<" in listed.content.decode()
    detail = admin_client.get(f"/admin/integrations/webhookdelivery/{delivery.pk}/change/")
    assert detail.status_code == 200

    admin_client.post(
        "/admin/integrations/webhookdelivery/",
        {"action": "resend", "_selected_action": [delivery.pk]},
    )
    webhooks.webhook_send(webhook_id=webhook.pk)
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert [json.loads(r.body)["type"] for r in receiver.at("/hook")] == ["points.earned"] * 2
