from loyalty.lifecycle import points_expiry_notices
from loyalty.management.jobs import JobCommand


class Command(JobCommand):
    help = (points_expiry_notices.__doc__ or "").strip().splitlines()[0]
    job = points_expiry_notices
