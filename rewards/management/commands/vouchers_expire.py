from core.jobs import job_command
from rewards.services import vouchers_expire

Command = job_command(vouchers_expire)
