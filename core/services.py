"""Writes of the plumbing: API clients and their keys."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from core.auth import forget_cached_clients, key_digest, new_key
from core.errors import ValidationFailed
from core.models import SCOPES, ApiClient


def api_client_create(
    *,
    name: str,
    scopes: list[str],
    market_codes: list[str] | None = None,
    expires_at: datetime | None = None,
    rate_per_minute: int | None = None,
) -> tuple[ApiClient, str]:
    """Create a client and its key. The raw key is returned once, never stored."""
    if "all" in scopes:
        scopes = list(SCOPES)
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValidationFailed(f"Unknown scopes: {', '.join(unknown)}.")
    # The club's markets, reached through the client's own relation: core
    # sits below the club's app and does not import it.
    market_model = ApiClient._meta.get_field("markets").related_model
    markets = list(market_model.objects.filter(code__in=market_codes or []))
    missing = sorted(set(market_codes or []) - {m.code for m in markets})
    if missing:
        raise ValidationFailed(f"Unknown markets: {', '.join(missing)}.")
    raw, prefix = new_key()
    with transaction.atomic():
        client = ApiClient.objects.create(
            name=name,
            key_prefix=prefix,
            key_digest=key_digest(raw),
            scopes=sorted(set(scopes)),
            expires_at=expires_at,
            rate_per_minute=rate_per_minute,
        )
        client.markets.set(markets)
    return client, raw


def api_client_rotate(*, client: ApiClient) -> str:
    """A new key for the client; the old one stops working at once."""
    raw, prefix = new_key()
    ApiClient.objects.filter(pk=client.pk).update(key_prefix=prefix, key_digest=key_digest(raw))
    forget_cached_clients()
    return raw


def api_client_revoke(*, client: ApiClient) -> None:
    ApiClient.objects.filter(pk=client.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    forget_cached_clients()
