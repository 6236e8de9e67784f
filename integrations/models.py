"""Imports of another club's members and purchases, as staff run them in
the admin: the uploaded file, the dry run's summary, the progress and the
report of the import."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ImportJob(models.Model):
    class Kind(models.TextChoices):
        MEMBERS = "members"
        PURCHASES = "purchases"

    class Status(models.TextChoices):
        CHECKING = "checking", "dry run queued"
        CHECKING_NOW = "dry_running", "dry run running"
        CHECKED = "checked", "dry run done: waiting for a go-ahead"
        QUEUED = "queued", "import queued"
        RUNNING = "running", "import running"
        DONE = "done", "import done"
        FAILED = "failed", "refused (see the message)"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    file = models.FileField(upload_to="imports/%Y/%m/")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CHECKING)
    dry_created = models.PositiveIntegerField(default=0, help_text="The dry run: would be created.")
    dry_unchanged = models.PositiveIntegerField(default=0)
    dry_failed = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(default=0)
    first_errors = models.JSONField(default=list, blank=True)
    report = models.FileField(upload_to="imports/reports/%Y/%m/", blank=True)
    message = models.TextField(blank=True)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} import #{self.pk}"

    @property
    def is_busy(self) -> bool:
        """Waiting for or running its dry run or its import (its page reloads)."""
        return self.status in {
            self.Status.CHECKING,
            self.Status.CHECKING_NOW,
            self.Status.QUEUED,
            self.Status.RUNNING,
        }


class Webhook(models.Model):
    """A subscription of an API client: the events it wants, POSTed to its
    URL, signed with its secret (Standard Webhooks). It hears only of
    members in its client's markets."""

    client = models.ForeignKey("core.ApiClient", on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text='Event types, or ["*"] for all.')
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    # whsec_<base64>: shown once, when created; the signing key is the decoded part.
    secret = models.CharField(max_length=100, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "url"], name="webhook_client_url"),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook #{self.pk} {self.url}"

    def wants(self, topic: str) -> bool:
        return "*" in self.events or topic in self.events


class WebhookDelivery(models.Model):
    """One event to one webhook: pending until a 2xx answer, retried on the
    schedule of WEBHOOK_RETRY_SCHEDULE, then failed (staff can send it again)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey("core.OutboxEvent", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # A sender holds the delivery until then (a lease): no other sends it meanwhile.
    leased_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["webhook", "event"], name="webhook_delivery_once"),
        ]
        indexes = [
            # A sender's lease walks it in order and stops at its batch: (time,
            # id), so that a backlog of many rows due at one moment is not sorted.
            models.Index(
                fields=["webhook", "next_attempt_at", "id"],
                condition=models.Q(status="pending"),
                name="webhook_delivery_due",
            ),
            models.Index(fields=["status", "created_at"], name="webhook_delivery_status"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"delivery #{self.pk} ({self.status})"


class WebhookAttempt(models.Model):
    """The delivery log: each POST, its answer and how long it took."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField()
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["webhook", "-at"], name="webhook_attempt_log")]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery #{self.delivery_id}"
