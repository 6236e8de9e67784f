from core.jobs import job_command
from rewards.gifts import welcome_gifts

Command = job_command(welcome_gifts)
