"""Reads of the club's reference data, and the one check that a store
belongs to a market."""

from __future__ import annotations

import time

from club.models import Market, Store
from core.errors import UnknownStore

_STORE_SECONDS = 30.0
_stores: dict[str, tuple[Store, float]] = {}


def store_by_code(code: str) -> Store | None:
    """Stores change seldom and are asked for on every receipt: a store
    found is kept in the process for 30 seconds (a store not found is
    always looked up again, so a new one is known at once)."""
    now = time.monotonic()
    cached = _stores.get(code)
    if cached is not None and now - cached[1] < _STORE_SECONDS:
        return cached[0]
    store = Store.objects.filter(code=code).first()
    if store is not None:
        if len(_stores) > 10_000:
            _stores.clear()
        _stores[code] = (store, now)
    return store


def forget_cached_stores() -> None:
    _stores.clear()


def store_in_market(*, market: Market, store_code: str) -> Store:
    """The store of that code in the market, or unknown_store."""
    store = store_by_code(store_code)
    if store is None or store.market_id != market.pk:
        raise UnknownStore(f"Store {store_code} is not registered in market {market.code}.")
    return store


# Markets change seldom (staff, in the admin) and every insight report
# starts with one: a market found is kept in the process this long, by code
# and by id (a market not found is always looked up again).
_MARKET_SECONDS = 5.0
_markets: dict[str | int, tuple[Market, float]] = {}


def market_recent(*, code: str | None = None, market_id: int | None = None) -> Market | None:
    """The market of that code (or id) as read at most _MARKET_SECONDS ago
    in this process, or None when there is none: a change made in the
    admin shows within that time. The instance is shared: read it only."""
    key: str | int = code if code is not None else market_id  # type: ignore[assignment]
    now = time.monotonic()
    cached = _markets.get(key)
    if cached is not None and now - cached[1] < _MARKET_SECONDS:
        return cached[0]
    if code is not None:
        market = Market.objects.filter(code=code).first()
    else:
        market = Market.objects.filter(pk=market_id).first()
    if market is not None:
        if len(_markets) > 1_000:
            _markets.clear()
        _markets[market.code] = _markets[market.pk] = (market, now)
    return market


def forget_cached_markets() -> None:
    _markets.clear()


def market_by_id(market_id: int) -> Market:
    return Market.objects.get(pk=market_id)


def market_by_code(code: str) -> Market | None:
    return Market.objects.filter(code=code).first()
