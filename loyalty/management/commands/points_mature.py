from loyalty.lifecycle import points_mature
from loyalty.management.jobs import JobCommand


class Command(JobCommand):
    help = (points_mature.__doc__ or "").strip().splitlines()[0]
    job = points_mature
