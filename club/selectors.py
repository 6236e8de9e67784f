"""Reads of the club's reference data, and the one check that a store
belongs to a market."""

from __future__ import annotations

from club.models import Market, Store
from core.errors import UnknownStore
from core.recent import Recent

_stores: Recent[Store] = Recent(seconds=30.0, max_size=10_000)


def store_by_code(code: str) -> Store | None:
    """Stores change seldom and are asked for on every receipt: a store
    found is kept in the process for 30 seconds (a store not found is
    always looked up again, so a new one is known at once)."""
    store = _stores.get(code)
    if store is None:
        store = Store.objects.filter(code=code).first()
        if store is not None:
            _stores.put([code], store)
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
_markets: Recent[Market] = Recent(seconds=5.0, max_size=1_000)


def market_recent(*, code: str | None = None, market_id: int | None = None) -> Market | None:
    """The market of that code (or id) as read at most 5 seconds ago
    in this process, or None when there is none: a change made in the
    admin shows within that time. The instance is shared: read it only."""
    market = _markets.get(code if code is not None else market_id)
    if market is None:
        if code is not None:
            market = Market.objects.filter(code=code).first()
        else:
            market = Market.objects.filter(pk=market_id).first()
        if market is not None:
            _markets.put([market.code, market.pk], market)
    return market


def forget_cached_markets() -> None:
    _markets.clear()


def market_by_id(market_id: int) -> Market:
    return Market.objects.get(pk=market_id)


def market_by_code(code: str) -> Market | None:
    return Market.objects.filter(code=code).first()
