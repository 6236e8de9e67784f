"""The shared shape of the job commands: --as-of, a progress bar on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from tqdm import tqdm


def parse_as_of(value: str | None) -> datetime:
    if not value:
        return timezone.now()
    parsed = parse_datetime(value)
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise CommandError(f"--as-of: not an ISO datetime: {value}") from None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


class JobCommand(BaseCommand):
    job: Callable[..., Any]
    unit = "rows"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", default=None,
                            help="ISO datetime to run as of (default: now).")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = parse_as_of(options["as_of"])
        bar = tqdm(unit=f" {self.unit}", disable=not sys.stderr.isatty(), file=sys.stderr)
        try:
            result = type(self).job(as_of=as_of, progress=bar.update)
        finally:
            bar.close()
        self.stdout.write(f"{result} (as of {as_of.isoformat()})")
