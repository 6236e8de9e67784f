from core.jobs import job_command
from rewards.gifts import tier_upgrade_gifts

Command = job_command(tier_upgrade_gifts)
