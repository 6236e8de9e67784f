"""webhooks_purge: see integrations/webhooks.py."""

from core.jobs import job_command
from integrations.webhooks import webhooks_purge

Command = job_command(webhooks_purge)
