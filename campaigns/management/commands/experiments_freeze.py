from campaigns.experiments import experiments_freeze
from core.jobs import job_command

Command = job_command(experiments_freeze)
