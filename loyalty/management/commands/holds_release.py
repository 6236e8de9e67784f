from core.jobs import job_command
from loyalty.lifecycle import holds_release

Command = job_command(holds_release)
