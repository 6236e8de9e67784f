"""webhooks_dispatch: see integrations/webhooks.py."""

from core.jobs import job_command
from integrations.webhooks import webhooks_dispatch

Command = job_command(webhooks_dispatch)
