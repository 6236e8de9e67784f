from core.jobs import job_command
from insights.scoring import insights_refresh

Command = job_command(
    insights_refresh, {"market": "Only this market (its code); default: every one."}
)
