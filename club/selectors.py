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


def market_by_id(market_id: int) -> Market:
    return Market.objects.get(pk=market_id)


def market_by_code(code: str) -> Market | None:
    return Market.objects.filter(code=code).first()
