from django.apps import AppConfig


class LojalConfig(AppConfig):
    name = "config"
    label = "config"
    verbose_name = "API clients and plumbing"
