"""Imports in the admin: staff upload a members or purchases file, the dry
run checks it in the background and its summary shows on the job's page;
"Run the import" queues the import, whose progress the page shows (it
reloads itself while the job is busy) and whose report is downloadable
afterwards. Writes go through integrations.services.

Webhooks: staff add and switch them off, see each one's delivery log, and
send failed deliveries again (an action on the deliveries' list)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from core.actors import staff_actor
from core.errors import DomainError
from integrations.models import ImportJob, Webhook, WebhookAttempt, WebhookDelivery
from integrations.services import import_job_confirm, import_job_create
from integrations.tasks import import_dry_run_task, import_run_task
from integrations.webhooks import deliveries_resend, events_check, secret_new, url_check


def _enqueue_dry_run(job_id: int) -> None:
    import_dry_run_task.delay(job_id)


def _enqueue_run(job_id: int) -> None:
    import_run_task.delay(job_id)


class ImportJobAddForm(forms.ModelForm):
    class Meta:
        model = ImportJob
        fields = ["kind", "file"]
        help_texts = {
            "file": "A CSV file (UTF-8, header row, comma separated): see docs/imports.md."
        }


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "kind",
        "status",
        "progress",
        "created",
        "unchanged",
        "failed",
        "staff_user",
        "created_at",
    ]
    list_filter = ["kind", "status"]
    readonly_fields = [
        "kind",
        "file",
        "status",
        "progress",
        "dry_run",
        "result",
        "errors",
        "message",
        "staff_user",
        "confirmed_by",
        "created_at",
        "started_at",
        "finished_at",
    ]
    fields = readonly_fields

    def get_form(self, request: HttpRequest, obj: ImportJob | None = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ImportJobAddForm
            kwargs["fields"] = ["kind", "file"]
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ImportJob | None = None) -> list[str]:
        return ["kind", "file"] if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: ImportJob | None = None) -> list[str]:
        return [] if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ImportJob, form: Any, change: bool) -> None:
        if change:
            return  # a job's page changes nothing but through its buttons
        job = import_job_create(
            kind=obj.kind,
            file=form.cleaned_data["file"],
            actor=staff_actor(request.user),
            enqueue=_enqueue_dry_run,
        )
        obj.pk = job.pk
        obj.file = job.file
        obj.status = job.status

    def response_change(self, request: HttpRequest, obj: ImportJob) -> HttpResponse:
        if "_run_import" in request.POST:
            try:
                import_job_confirm(job=obj, actor=staff_actor(request.user), enqueue=_enqueue_run)
            except DomainError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, "The import is queued; this page shows its progress.")
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def get_urls(self) -> list[Any]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/report/",
                self.admin_site.admin_view(self.report_view),
                name=f"{info[0]}_{info[1]}_report",
            ),
            *super().get_urls(),
        ]

    def report_view(self, request: HttpRequest, object_id: str) -> FileResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = self.get_object(request, unquote(object_id))
        if job is None or not job.report:
            raise Http404("No report yet.")
        return FileResponse(
            job.report.open("rb"),
            as_attachment=True,
            filename=f"{job.kind}-import-{job.pk}-report.csv",
            content_type="text/csv",
        )

    @admin.display(description="progress")
    def progress(self, job: ImportJob) -> str:
        if not job.rows_total:
            return "-"
        percent = min(100, round(100 * job.rows_done / job.rows_total))
        return f"{job.rows_done:,} of {job.rows_total:,} rows ({percent} %)"

    @admin.display(description="dry run")
    def dry_run(self, job: ImportJob) -> str:
        if job.status in (ImportJob.Status.CHECKING, ImportJob.Status.CHECKING_NOW):
            return "running..."
        return (
            f"{job.dry_created:,} would be created, {job.dry_unchanged:,} unchanged, "
            f"{job.dry_failed:,} failed"
        )

    @admin.display(description="import")
    def result(self, job: ImportJob) -> str:
        if job.status != ImportJob.Status.DONE:
            return "-"
        report = reverse("admin:integrations_importjob_report", args=[job.pk])
        return format_html(
            '{} created, {} unchanged, {} failed (<a href="{}">report</a>)',
            f"{job.created:,}",
            f"{job.unchanged:,}",
            f"{job.failed:,}",
            report,
        )

    @admin.display(description="first errors")
    def errors(self, job: ImportJob) -> str:
        if not job.first_errors:
            return "-"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "", "<li>line {}: {}</li>", ((e["line"], e["error"]) for e in job.first_errors)
            ),
        )

    def has_delete_permission(self, request: HttpRequest, obj: ImportJob | None = None) -> bool:
        return False


# --- webhooks ------------------------------------------------------------------------


class WebhookForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")

    class Meta:
        model = Webhook
        fields = ["client", "url", "events", "description", "active"]
        help_texts = {"events": 'A JSON list of event types, or ["*"] for every event.'}

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            url_check(url)
        except DomainError as exc:
            raise forms.ValidationError(exc.detail) from None
        return url

    def clean_events(self) -> list[str]:
        events = self.cleaned_data["events"]
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise forms.ValidationError("A JSON list of event types.")
        try:
            return events_check(events)
        except DomainError as exc:
            raise forms.ValidationError(exc.detail) from None


class WebhookAttemptInline(admin.TabularInline):
    """The delivery log: the latest attempts of this webhook."""

    model = WebhookAttempt
    fields = ["at", "delivery", "number", "ok", "status_code", "duration_ms", "error"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["-id"]
    verbose_name_plural = "delivery log (latest first)"

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("delivery")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = ["id", "url", "client", "active", "created_at", "pending", "failed"]
    list_filter = ["active"]
    search_fields = ["url", "description", "client__name"]
    list_select_related = ["client"]
    readonly_fields = ["created_at", "delivery_log"]

    @admin.display(description="delivery log (the latest 50 attempts)")
    def delivery_log(self, obj: Webhook) -> str:
        if obj.pk is None:
            return "-"
        rows = obj.attempts.order_by("-id").values_list(
            "at", "delivery_id", "number", "ok", "status_code", "duration_ms", "error"
        )[:50]
        return format_html(
            "<table><tr><th>at</th><th>delivery</th><th>attempt</th><th>ok</th>"
            "<th>response</th><th>ms</th><th>error</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                "<td>{}</td></tr>",
                rows,
            ),
        )

    @admin.display(description="pending")
    def pending(self, obj: Webhook) -> int:
        return obj.deliveries.filter(status=WebhookDelivery.Status.PENDING).count()

    @admin.display(description="failed")
    def failed(self, obj: Webhook) -> int:
        return obj.deliveries.filter(status=WebhookDelivery.Status.FAILED).count()

    def save_model(self, request: HttpRequest, obj: Webhook, form: Any, change: bool) -> None:
        new = obj.pk is None
        if new:
            obj.secret = secret_new()
        super().save_model(request, obj, form, change)
        if new:
            messages.warning(
                request,
                f"The webhook's signing secret, shown only now: {obj.secret}",
            )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Deliveries and their state; failed ones can be sent again."""

    list_display = [
        "id",
        "webhook",
        "event_topic",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "webhook"]
    list_select_related = ["webhook", "event"]
    readonly_fields = [
        "webhook",
        "event",
        "event_topic",
        "status",
        "attempts",
        "next_attempt_at",
        "leased_until",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
    ]
    fields = readonly_fields
    actions = ["resend"]
    inlines = [WebhookAttemptInline]

    @admin.display(description="event")
    def event_topic(self, obj: WebhookDelivery) -> str:
        return obj.event.topic

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Send the selected deliveries again", permissions=["change"])
    def resend(self, request: HttpRequest, queryset: Any) -> None:
        count = deliveries_resend(delivery_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} deliveries queued to be sent again.")


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(admin.ModelAdmin):
    """The whole delivery log, by webhook: attempt, status, duration, response code."""

    list_display = ["at", "webhook", "delivery", "number", "ok", "status_code", "duration_ms"]
    list_filter = ["ok", "webhook"]
    list_select_related = ["webhook"]
    readonly_fields = [
        "at",
        "webhook",
        "delivery",
        "number",
        "ok",
        "status_code",
        "duration_ms",
        "error",
    ]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
