from loyalty.management.jobs import JobCommand
from rewards.gifts import welcome_gifts


class Command(JobCommand):
    help = (welcome_gifts.__doc__ or "").strip().splitlines()[0]
    job = welcome_gifts
