from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BackofficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back office"

    def ready(self) -> None:
        from backoffice.staff import staff_groups_after_migrate

        post_migrate.connect(staff_groups_after_migrate)
