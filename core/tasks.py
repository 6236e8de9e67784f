from celery import shared_task
from django.utils import timezone

from core import idempotency  # noqa: F401  (declares the idempotency_purge job)
from core.models import WorkerHeartbeat


@shared_task(name="config.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Proves to /health/ that a worker is consuming the queue."""
    WorkerHeartbeat.objects.update_or_create(name="worker", defaults={"seen_at": timezone.now()})
