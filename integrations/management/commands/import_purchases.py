"""`manage.py import_purchases FILE.csv [--dry-run] [--report OUT.csv]` (docs/imports.md)."""

from integrations.management.commands._import import ImportCommand


class Command(ImportCommand):
    help = "Import purchases from a CSV file (docs/imports.md). Exits 1 when a row failed."
    kind = "purchases"
