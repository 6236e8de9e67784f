"""What `make run` does before it starts the processes: the demo club, an
admin user with a password generated on the first run, and a demo API key."""

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from backoffice.demo import demo_club_seed
from core.auth import client_for_key
from core.services import api_client_create


class Command(BaseCommand):
    help = "Seed the demo club and print the admin login and a demo API key (development only)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", default="8000")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"seed_demo: {demo_club_seed()}")
        var = settings.VAR_DIR
        var.mkdir(parents=True, exist_ok=True)
        password_file = var / "admin_password"
        User = get_user_model()
        if not User.objects.filter(username="admin").exists() or not password_file.exists():
            password = secrets.token_urlsafe(12)
            user, _ = User.objects.get_or_create(
                username="admin", defaults={"is_staff": True, "is_superuser": True}
            )
            user.set_password(password)
            user.save()
            password_file.write_text(password)
            password_file.chmod(0o600)
        key_file = var / "demo_api_key"
        if not key_file.exists() or client_for_key(key_file.read_text().strip()) is None:
            _, raw = api_client_create(name="Demo integration", scopes=["all"])
            key_file.write_text(raw)
            key_file.chmod(0o600)
        self.stdout.write("")
        self.stdout.write(
            f"  Admin:    http://127.0.0.1:{options['port']}/admin/  "
            f"user admin, password {password_file.read_text().strip()}"
        )
        self.stdout.write(
            f"  API key:  {key_file.read_text().strip()}  (every scope, every market)"
        )
        self.stdout.write("")
