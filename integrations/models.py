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
