from core.jobs import job_command
from loyalty.lifecycle import points_mature

Command = job_command(points_mature)
