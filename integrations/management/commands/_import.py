"""What `import_members` and `import_purchases` share."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from core.actors import system_actor
from core.errors import DomainError
from integrations.imports import CHUNK_SIZE, IMPORTERS, rows_count


class ImportCommand(BaseCommand):
    kind = ""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The CSV file (UTF-8, header row, comma separated).")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Check every row and report what would change; change nothing.",
        )
        parser.add_argument(
            "--report",
            metavar="OUT.csv",
            help="Write one line per input row: line, key, member_number, status, error.",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=CHUNK_SIZE,
            help="Rows per transaction (default %(default)s).",
        )
        # Tests only: a pause between chunks, to kill a run half way.
        parser.add_argument("--pause", type=float, default=0, help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        bar = None
        if sys.stderr.isatty():
            try:
                total = rows_count(path)
            except OSError:
                total = None
            bar = tqdm(total=total, unit="rows", desc=f"{self.kind}", file=sys.stderr)
        report = (
            open(options["report"], "w", encoding="utf-8", newline="")
            if options["report"]
            else None
        )
        try:
            result = IMPORTERS[self.kind](
                path=path,
                actor=system_actor(f"import_{self.kind}"),
                dry_run=options["dry_run"],
                report=report,
                chunk_size=max(1, options["chunk_size"]),
                progress=bar.update if bar is not None else None,
                pause=options["pause"],
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar is not None:
                bar.close()
            if report is not None:
                report.close()
        verb = "would be " if options["dry_run"] else ""
        self.stdout.write(
            f"{result.rows} rows: {result.created} {verb}created, {result.unchanged} unchanged, "
            f"{result.failed} failed."
        )
        for error in result.first_errors[:10]:
            self.stderr.write(f"line {error['line']}: {error['error']}")
        if result.failed:
            sys.exit(1)
