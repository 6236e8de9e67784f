from core.jobs import job_command
from integrations.privacy import members_retention

Command = job_command(members_retention)
