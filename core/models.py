"""The HTTP plumbing's own tables: API clients and idempotency keys."""

from __future__ import annotations

from django.db import models

SCOPES = (
    "members:read",
    "members:write",
    "purchases:write",
    "points:redeem",
    "points:adjust",
    "rewards:write",
    "benefits:use",
    "insights:read",
    "privacy",
    "webhooks:manage",
    "campaigns:write",
)


class ApiClient(models.Model):
    """An integration (a store's POS, a web shop, a CRM) and its key.

    Only a SHA-256 digest of the key is stored: keys are 256-bit random
    secrets, so a fast digest is as safe as a slow password hash and costs
    microseconds per request.
    """

    name = models.CharField(max_length=100)
    key_prefix = models.CharField(max_length=12, help_text="The start of the key, to recognise it.")
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    markets = models.ManyToManyField(
        "club.Market", blank=True, help_text="None means every market."
    )
    rate_per_minute = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API client"
        # A new key (or a rotated one) is a new bearer secret: its own permission.
        permissions = [("create_api_key", "Can create an API key or rotate one")]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"


class IdempotencyRecord(models.Model):
    """One Idempotency-Key of one client, and the answer it got."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    body_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "key"], name="idempotency_client_key_unique"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]


class WorkerHeartbeat(models.Model):
    """Written by a periodic task; /health/ reads how fresh it is."""

    name = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField()


class OutboxEvent(models.Model):
    """Events for the club's other systems (CRM, e-mail), written in the same
    transaction as what they tell of, and delivered by a later integration.

    `dedupe_key` makes each event happen once however often a job runs:
    e.g. `points.expiring_soon:<lot id>:<date>`.
    """

    topic = models.CharField(max_length=64)
    dedupe_key = models.CharField(max_length=200, unique=True)
    member = models.ForeignKey(
        "members.Member", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(delivered_at__isnull=True),
                name="outbox_undelivered",
            ),
            models.Index(fields=["topic", "created_at"], name="outbox_topic"),
        ]
