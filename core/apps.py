from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "API clients and plumbing"

    def ready(self) -> None:
        # Django's hook for registering extensions once the apps are loaded.
        from core import idempotency, schema  # noqa: F401  (the retention check)
