from typing import Any

from django.core.management.base import BaseCommand

from backoffice.demo import demo_club_seed


class Command(BaseCommand):
    help = "Load the demo club (markets, stores, tiers, members). Running it twice changes nothing."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"seed_demo: {demo_club_seed()}")
