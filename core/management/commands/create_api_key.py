from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.errors import ValidationFailed
from core.models import SCOPES
from core.services import api_client_create


class Command(BaseCommand):
    help = "Create an API client and print its key (shown once) alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            help=f"Repeatable: {', '.join(SCOPES)}, or 'all'.",
        )
        parser.add_argument(
            "--market",
            action="append",
            default=[],
            help="Repeatable market code; none means every market.",
        )
        parser.add_argument("--expires-days", type=int, default=None)
        parser.add_argument("--rate-per-minute", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        expires = None
        if options["expires_days"] is not None:
            expires = timezone.now() + timedelta(days=options["expires_days"])
        try:
            client, raw = api_client_create(
                name=options["name"],
                scopes=options["scope"],
                market_codes=options["market"],
                expires_at=expires,
                rate_per_minute=options["rate_per_minute"],
            )
        except ValidationFailed as exc:
            raise CommandError(exc.detail) from None
        markets = ", ".join(options["market"]) or "all markets"
        self.stdout.write(
            f"API client {client.name} (id {client.pk}), scopes {', '.join(client.scopes) or 'none'}, "
            f"{markets}. The key is shown once:"
        )
        self.stdout.write(raw)
