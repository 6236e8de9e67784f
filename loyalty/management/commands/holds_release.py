from loyalty.lifecycle import holds_release
from loyalty.management.jobs import JobCommand


class Command(JobCommand):
    help = (holds_release.__doc__ or "").strip().splitlines()[0]
    job = holds_release
