"""The admin's imports: a job per uploaded file, its dry run, then the
import itself, both in the background (integrations.tasks) and both
calling integrations.imports. Progress and counts are written on the job as
the chunks commit, so that its page shows them."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.actors import Actor, system_actor
from core.errors import DomainError, InvalidState, ValidationFailed
from integrations.imports import IMPORTERS, ImportResult, rows_count
from integrations.models import ImportJob

FIRST_ERRORS_KEPT = 20
Enqueue = Callable[[int], None]


def import_job_create(
    *, kind: str, file: UploadedFile, actor: Actor, enqueue: Enqueue
) -> ImportJob:
    """A new job for an uploaded file; its dry run is queued once the job is
    committed (`enqueue` gets the job's id)."""
    if kind not in IMPORTERS:
        raise ValidationFailed(
            f"Unknown kind of import {kind}.", errors={"kind": ["Unknown kind."]}
        )
    with transaction.atomic():
        job = ImportJob.objects.create(
            kind=kind,
            file=file,
            status=ImportJob.Status.CHECKING,
            staff_user_id=actor.staff_user_id,
        )
        transaction.on_commit(lambda: enqueue(job.pk))
    return job


def import_job_confirm(*, job: ImportJob, actor: Actor, enqueue: Enqueue) -> ImportJob:
    """Staff saw the dry run and go ahead: the import is queued."""
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != ImportJob.Status.CHECKED:
            raise InvalidState(
                f"The import is {locked.get_status_display()}, not waiting for a go-ahead."
            )
        locked.status = ImportJob.Status.QUEUED
        locked.confirmed_by_id = actor.staff_user_id
        locked.save(update_fields=["status", "confirmed_by"])
        transaction.on_commit(lambda: enqueue(locked.pk))
    return locked


def _progress(job_id: int) -> Callable[[int], None]:
    def advance(rows: int) -> None:
        ImportJob.objects.filter(pk=job_id).update(rows_done=F("rows_done") + rows)

    return advance


def _start(job_id: int, expected: str, now_status: str) -> ImportJob | None:
    """The job, moved from `expected` to `now_status`; None when another
    worker has it or it is done (a task delivered twice)."""
    job = ImportJob.objects.get(pk=job_id)
    path = Path(job.file.path)
    moved = ImportJob.objects.filter(pk=job_id, status=expected).update(
        status=now_status,
        rows_done=0,
        rows_total=rows_count(path),
        started_at=timezone.now(),
    )
    return ImportJob.objects.get(pk=job_id) if moved else None


def _first_errors(result: ImportResult) -> list[dict[str, object]]:
    return result.first_errors[:FIRST_ERRORS_KEPT]


def import_job_dry_run(*, job_id: int) -> ImportJob | None:
    """The dry run: every row checked, nothing written but the summary. It
    runs in one transaction, rolled back: its progress shows at the end."""
    job = _start(job_id, ImportJob.Status.CHECKING, ImportJob.Status.CHECKING_NOW)
    if job is None:
        return None
    try:
        result = IMPORTERS[job.kind](
            path=job.file.path, actor=system_actor("import dry run"), dry_run=True
        )
    except DomainError as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.FAILED, message=str(exc), finished_at=timezone.now()
        )
        return ImportJob.objects.get(pk=job.pk)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.CHECKED,
        rows_done=result.rows,
        rows_total=result.rows,
        dry_created=result.created,
        dry_unchanged=result.unchanged,
        dry_failed=result.failed,
        first_errors=_first_errors(result),
    )
    return ImportJob.objects.get(pk=job.pk)


def import_job_run(*, job_id: int) -> ImportJob | None:
    """The import of a confirmed job, its report kept on the job. A run that
    died (a worker lost) is simply run again: the import is idempotent."""
    job = _start(job_id, ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)
    if job is None:
        job = _start(job_id, ImportJob.Status.RUNNING, ImportJob.Status.RUNNING)
        if job is None:
            return None
    actor = system_actor(
        f"import by {job.staff_user.get_username()}" if job.staff_user else "import"
    )
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as report:
        try:
            result = IMPORTERS[job.kind](
                path=job.file.path, actor=actor, report=report, progress=_progress(job.pk)
            )
        except DomainError as exc:
            ImportJob.objects.filter(pk=job.pk).update(
                status=ImportJob.Status.FAILED, message=str(exc), finished_at=timezone.now()
            )
            return ImportJob.objects.get(pk=job.pk)
        report.seek(0)
        job.refresh_from_db()
        job.report.save(f"{Path(job.file.name).stem}-report.csv", File(report), save=False)
    job.status = ImportJob.Status.DONE
    job.created, job.unchanged, job.failed = result.created, result.unchanged, result.failed
    job.first_errors = _first_errors(result)
    job.rows_done = job.rows_total = result.rows
    job.finished_at = timezone.now()
    job.save(
        update_fields=[
            "report",
            "status",
            "created",
            "unchanged",
            "failed",
            "first_errors",
            "rows_done",
            "rows_total",
            "finished_at",
        ]
    )
    return job
