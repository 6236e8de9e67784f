from core.jobs import job_command
from loyalty.lifecycle import points_expiry_notices

Command = job_command(points_expiry_notices)
