from typing import Any

from django.core.management.base import BaseCommand

from core.jobs import schedules_install


class Command(BaseCommand):
    help = "Install the periodic tasks in django-celery-beat (idempotent; staff can pause them in the admin)."

    def handle(self, *args: Any, **options: Any) -> None:
        created = schedules_install()
        self.stdout.write(f"schedules: {created} created")
