from core.jobs import job_command
from journeys.services import missions_close

Command = job_command(missions_close)
