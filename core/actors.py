"""Who does a write: an API client, a staff user, or the system itself (a
job, the demo, an import). Services take one explicitly and record it; they
never see an HTTP request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Actor:
    name: str
    market_ids: frozenset[int] | None = None  # None: every market
    api_client_id: int | None = None
    staff_user_id: int | None = None

    def sees_market(self, market_id: int) -> bool:
        return self.market_ids is None or market_id in self.market_ids


def system_actor(name: str = "system") -> Actor:
    """The service itself: sees every market, records no client or user."""
    return Actor(name=name)


def staff_actor(user: Any) -> Actor:
    """A staff user in the admin: sees every market, recorded by id."""
    return Actor(name=user.get_username(), staff_user_id=user.pk)


SYSTEM = system_actor()
