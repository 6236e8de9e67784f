from loyalty.lifecycle import points_expire
from loyalty.management.jobs import JobCommand


class Command(JobCommand):
    help = (points_expire.__doc__ or "").strip().splitlines()[0]
    job = points_expire
