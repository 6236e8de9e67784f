"""Every job is scheduled in django-celery-beat, by a task the worker knows."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from config.celery import app
from core.jobs import schedules

pytestmark = pytest.mark.django_db

JOBS = {
    "loyalty.points_mature",
    "loyalty.points_expire",
    "loyalty.holds_release",
    "loyalty.points_expiry_notices",
    "loyalty.tiers_evaluate",
    "rewards.vouchers_expire",
}


def test_schedules_install_puts_every_job_in_beats_tables_once(capsys):
    call_command("schedules_install")
    call_command("schedules_install")
    tasks = set(PeriodicTask.objects.values_list("task", flat=True))
    assert JOBS <= tasks
    assert PeriodicTask.objects.count() == len(schedules())
    assert "0 created" in capsys.readouterr().out.splitlines()[-1]


def test_every_scheduled_task_is_registered_with_the_worker_app():
    app.loader.import_default_modules()
    for task, _ in schedules().values():
        assert task in app.tasks, task


def test_a_paused_schedule_stays_paused_when_installed_again():
    call_command("schedules_install")
    PeriodicTask.objects.filter(task="loyalty.points_expire").update(enabled=False)
    call_command("schedules_install")
    assert PeriodicTask.objects.get(task="loyalty.points_expire").enabled is False
