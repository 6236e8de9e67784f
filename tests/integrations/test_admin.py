"""The admin's imports: upload, the dry run's summary, the go-ahead, the
import in the background with its progress, the report to download. The
tasks' services run here in the test's process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from integrations.models import ImportJob
from integrations.services import import_job_dry_run, import_job_run
from members.models import Member
from tests.helpers import counts

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

FILE = (
    b"external_id,market,email,points\n"
    b"ADM-1,SE,adm1@old.test,100\n"
    b"ADM-2,XX,adm2@old.test,0\n"
    b"ADM-3,NO,adm3@old.test,5\n"
)


@pytest.fixture(autouse=True)
def _media(tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def test_upload_dry_run_go_ahead_import_report(
    demo: None, admin_client: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    queued: list[tuple[str, int]] = []
    monkeypatch.setattr(
        "integrations.admin._enqueue_dry_run", lambda pk: queued.append(("dry", pk))
    )
    monkeypatch.setattr("integrations.admin._enqueue_run", lambda pk: queued.append(("run", pk)))
    assert admin_client.get("/admin/integrations/importjob/add/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(
            "/admin/integrations/importjob/add/",
            {"kind": "members", "file": SimpleUploadedFile("old-club.csv", FILE, "text/csv")},
        )
    assert answer.status_code == 302, answer.content[:2000]
    job = ImportJob.objects.get()
    assert queued == [("dry", job.pk)]
    assert job.status == "checking" and job.staff_user.is_superuser
    page = f"/admin/integrations/importjob/{job.pk}/change/"
    assert 'http-equiv="refresh"' in admin_client.get(page).content.decode()

    # The dry run (the task's service): a summary, nothing written.
    before = counts()
    import_job_dry_run(job_id=job.pk)
    assert counts() == before
    job.refresh_from_db()
    assert (job.status, job.dry_created, job.dry_unchanged, job.dry_failed) == ("checked", 2, 0, 1)
    assert (job.rows_done, job.rows_total) == (3, 3)
    html = admin_client.get(page).content.decode()
    assert "2 would be created, 0 unchanged, 1 failed" in html
    assert "line 3: unknown market XX" in html
    assert "Run the import" in html

    # The go-ahead: the import is queued, then runs (the task's service).
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(page, {"_run_import": "1"})
    assert answer.status_code == 302
    assert queued[-1] == ("run", job.pk)
    job.refresh_from_db()
    assert job.status == "queued"
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.created, job.unchanged, job.failed) == ("done", 2, 0, 1)
    assert (job.rows_done, job.rows_total) == (3, 3)
    assert Member.objects.filter(external_id__in=["ADM-1", "ADM-3"]).count() == 2
    html = admin_client.get(page).content.decode()
    assert "2 created, 0 unchanged, 1 failed" in html and "3 of 3 rows (100 %)" in html
    assert 'http-equiv="refresh"' not in html

    report = admin_client.get(f"/admin/integrations/importjob/{job.pk}/report/")
    assert report.status_code == 200
    text = b"".join(report.streaming_content).decode()
    lines = text.splitlines()
    assert lines[0] == "line,external_id,member_number,status,error"
    assert lines[2] == "3,ADM-2,,failed,unknown market XX"
    assert lines[1].startswith("2,ADM-1,") and lines[1].endswith(",created,")

    # A second go-ahead is refused: the job is done.
    admin_client.post(page, {"_run_import": "1"})
    job.refresh_from_db()
    assert job.status == "done"


def test_a_file_with_bad_columns_is_refused_with_its_message(
    demo: None, admin_client: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr("integrations.admin._enqueue_dry_run", lambda pk: None)
    admin_client.post(
        "/admin/integrations/importjob/add/",
        {"kind": "purchases", "file": SimpleUploadedFile("p.csv", b"receipt,total\n1,2\n")},
    )
    job = ImportJob.objects.get()
    import_job_dry_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "Unknown column(s): receipt" in job.message
    assert (
        "Unknown column(s): receipt"
        in admin_client.get(f"/admin/integrations/importjob/{job.pk}/change/").content.decode()
    )
