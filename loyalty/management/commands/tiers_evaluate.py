from loyalty.management.jobs import JobCommand
from loyalty.tiers import tiers_evaluate


class Command(JobCommand):
    help = "Re-evaluate members whose tier validity has run out (at most one level down)."
    job = tiers_evaluate
    unit = "members"
