from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from loyalty.selectors import accounts_checked, ledger_discrepancies


class Command(BaseCommand):
    help = "Prove every account's cached balance and pending from the ledger; exit 1 where they differ."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=1000, help="Most rows reported per check.")

    def handle(self, *args: Any, **options: Any) -> None:
        found = ledger_discrepancies(limit=options["limit"])
        total = accounts_checked()
        if found:
            for discrepancy in found:
                self.stderr.write(str(discrepancy))
            self.stderr.write(f"check_ledger: {len(found)} discrepancies in {total} accounts.")
            raise SystemExit(1)
        self.stdout.write(f"check_ledger: {total} accounts agree with the ledger.")
