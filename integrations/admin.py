"""Imports in the admin: staff upload a members or purchases file, the dry
run checks it in the background and its summary shows on the job's page;
"Run the import" queues the import, whose progress the page shows (it
reloads itself while the job is busy) and whose report is downloadable
afterwards. Writes go through integrations.services."""

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
from integrations.models import ImportJob
from integrations.services import import_job_confirm, import_job_create
from integrations.tasks import import_dry_run_task, import_run_task


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
