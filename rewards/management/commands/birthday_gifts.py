from core.jobs import job_command
from rewards.gifts import birthday_gifts

Command = job_command(birthday_gifts)
