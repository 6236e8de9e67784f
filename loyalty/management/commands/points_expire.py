from core.jobs import job_command
from loyalty.lifecycle import points_expire

Command = job_command(points_expire)
