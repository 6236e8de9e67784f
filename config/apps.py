from django.apps import AppConfig


class LojalConfig(AppConfig):
    name = "config"
    label = "config"
    verbose_name = "API clients and plumbing"

    def ready(self) -> None:
        from config import schema  # noqa: F401  registers the OpenAPI extension
