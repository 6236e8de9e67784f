from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "API clients and plumbing"

    def ready(self) -> None:
        # Django's hook for registering extensions once the apps are loaded.
        # (idempotency: its retention check; schema: the OpenAPI extension)
        from core import idempotency, logs, schema  # noqa: F401

        logs.configure()
        logs.celery_connect()
