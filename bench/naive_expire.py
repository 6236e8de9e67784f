"""The expiry written the naive way, for the bench's ratio only: an ORM loop
per lot, a transaction each. It books what `points_expire` books.

    python -m bench.naive_expire --as-of ISO
"""

from __future__ import annotations

import argparse
import os
import sys

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--as-of", required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    django.setup()
    from django.db import transaction
    from django.utils.dateparse import parse_datetime

    from club.dates import local_date
    from club.models import Market
    from loyalty.models import LedgerEntry, Lot, LotMovement, PointsAccount

    as_of = parse_datetime(args.as_of)
    done = 0
    for market in Market.objects.all():
        today = local_date(market, as_of)
        for lot in Lot.objects.filter(
            remaining__gt=0, expires_on__lt=today, member__market=market
        ).iterator():
            with transaction.atomic():
                account = PointsAccount.objects.select_for_update().get(member_id=lot.member_id)
                lot = Lot.objects.get(pk=lot.pk)
                if lot.remaining <= 0:
                    continue
                entry = LedgerEntry.objects.create(
                    member_id=lot.member_id,
                    kind="expire",
                    points=-lot.remaining,
                    reference=f"lot:{lot.pk}",
                    expires_on=lot.expires_on,
                )
                LotMovement.objects.create(
                    lot=lot, entry=entry, kind="spend", points=-lot.remaining
                )
                if lot.matured:
                    account.balance -= lot.remaining
                else:
                    account.pending -= lot.remaining
                lot.remaining = 0
                lot.save(update_fields=["remaining"])
                account.save(update_fields=["balance", "pending", "updated_at"])
                done += 1
    sys.stdout.write(f"naive expire: {done} rows\n")


if __name__ == "__main__":
    main()
