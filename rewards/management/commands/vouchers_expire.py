from loyalty.management.jobs import JobCommand
from rewards.services import vouchers_expire


class Command(JobCommand):
    help = (vouchers_expire.__doc__ or "").strip().splitlines()[0]
    job = vouchers_expire
    unit = "vouchers"
