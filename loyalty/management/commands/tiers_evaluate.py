from core.jobs import job_command
from loyalty.tiers import tiers_evaluate

Command = job_command(tiers_evaluate)
