"""idempotency_purge: see core/idempotency.py."""

from core.idempotency import idempotency_purge
from core.jobs import job_command

Command = job_command(idempotency_purge)
