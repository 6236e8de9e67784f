"""API key authentication and scopes.

Keys are `lj_<prefix>_<secret>`, 256 bits of randomness in all, stored as a
SHA-256 digest. A verified client is cached in the process for two seconds,
so the hot lookup does not pay a query for it; a revocation therefore takes
effect within two seconds everywhere (at once in the process that made it).

Only keys that exist are cached: an unknown key is looked up each time it
comes, and calls without a valid key are counted per client IP
(core.throttling) and answered 429 past their limit before the lookup, so a
flood of random keys can neither evict the cache nor cost a query each.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from core.actors import Actor
from core.logs import bind_client
from core.models import ApiClient
from core.recent import Recent
from core.throttling import unauthenticated_check, unauthenticated_count

CLIENT_CACHE_SECONDS = 2.0
# More cached clients than this (only real keys are cached): start afresh.
CLIENT_CACHE_MAX = 10_000


@dataclass(frozen=True, kw_only=True)
class Client(Actor):
    """An authenticated API client: the actor of every call it makes."""

    id: int
    scopes: frozenset[str]
    rate_per_minute: int | None = None
    expires_at: datetime | None = None

    # DRF treats request.user as a user; these make the client behave as one.
    is_authenticated = True
    is_active = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_client_id", self.id)


def key_digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh raw key and its display prefix."""
    prefix = secrets.token_hex(4)
    return f"lj_{prefix}_{secrets.token_urlsafe(32)}", f"lj_{prefix}"


_cache: Recent[Client] = Recent(seconds=CLIENT_CACHE_SECONDS, max_size=CLIENT_CACHE_MAX)


def forget_cached_clients() -> None:
    _cache.clear()


def _load_client(digest: str) -> Client | None:
    row = (
        ApiClient.objects.filter(key_digest=digest, revoked_at__isnull=True)
        .values("id", "name", "scopes", "rate_per_minute", "expires_at")
        .first()
    )
    if row is None:
        return None
    market_ids = frozenset(
        ApiClient.markets.through.objects.filter(apiclient_id=row["id"]).values_list(
            "market_id", flat=True
        )
    )
    return Client(
        id=row["id"],
        name=row["name"],
        scopes=frozenset(row["scopes"] or ()),
        market_ids=market_ids or None,
        rate_per_minute=row["rate_per_minute"],
        expires_at=row["expires_at"],
    )


def _loaded_client(digest: str) -> Client | None:
    client = _load_client(digest)
    if client is not None:
        _cache.put([digest], client)
    return client


def _usable(client: Client | None) -> Client | None:
    if client is not None and client.expires_at is not None and client.expires_at <= timezone.now():
        return None
    return client


def client_for_key(raw_key: str) -> Client | None:
    """The client of a raw key, None for an unknown, revoked or expired one."""
    digest = key_digest(raw_key)
    return _usable(_cache.get(digest) or _loaded_client(digest))


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request: Any) -> tuple[Client, None] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            unauthenticated_count(request)
            return None  # HasScope answers 401
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        # RFC 9110 11.1: the scheme is case-insensitive.
        if scheme.lower() != self.keyword.lower() or not raw or len(raw) > 128:
            unauthenticated_count(request)
            raise exceptions.AuthenticationFailed("Use 'Authorization: Api-Key <key>'.")
        digest = key_digest(raw)
        client = _cache.get(digest)
        if client is None:
            # Not seen in the last seconds: an IP past its limit of failures
            # gets no lookup at all.
            unauthenticated_check(request)
            client = _loaded_client(digest)
        client = _usable(client)
        if client is None:
            unauthenticated_count(request)
            raise exceptions.AuthenticationFailed("Unknown, expired or revoked key.")
        bind_client(client.name)
        return client, None

    def authenticate_header(self, request: Any) -> str:
        return self.keyword


class HasScope(permissions.BasePermission):
    """The view names the scope each method needs in `scopes`."""

    def has_permission(self, request: Any, view: Any) -> bool:
        client = request.user
        if not isinstance(client, Client):
            raise exceptions.NotAuthenticated("An API key is required.")
        method = "GET" if request.method == "HEAD" else request.method  # HEAD runs get()
        needed = getattr(view, "scopes", {}).get(method)
        if needed is None:
            return True
        if needed not in client.scopes:
            raise exceptions.PermissionDenied(f"This key lacks the scope {needed}.")
        return True
