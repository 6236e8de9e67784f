from core.jobs import job_command
from insights.rollups import insights_rollup

Command = job_command(insights_rollup)
