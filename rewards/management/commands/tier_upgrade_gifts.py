from loyalty.management.jobs import JobCommand
from rewards.gifts import tier_upgrade_gifts


class Command(JobCommand):
    help = (tier_upgrade_gifts.__doc__ or "").strip().splitlines()[0]
    job = tier_upgrade_gifts
