from loyalty.management.jobs import JobCommand
from journeys.services import missions_close


class Command(JobCommand):
    help = (missions_close.__doc__ or "").strip().splitlines()[0]
    job = missions_close
