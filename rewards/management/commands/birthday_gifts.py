from loyalty.management.jobs import JobCommand
from rewards.gifts import birthday_gifts


class Command(JobCommand):
    help = (birthday_gifts.__doc__ or "").strip().splitlines()[0]
    job = birthday_gifts
