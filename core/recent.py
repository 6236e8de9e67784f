"""What a process keeps of rows that change seldom and are read on every
call (API clients, stores, markets): each value found is kept for a few
seconds, so a change made elsewhere shows within them; a value not found is
never kept (a new row is known at once)."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """Values by key, each kept `seconds` in this process; past `max_size`
    keys everything is dropped (no bookkeeping per read)."""

    def __init__(self, *, seconds: float, max_size: int) -> None:
        self.seconds = seconds
        self.max_size = max_size
        self._values: dict[Hashable, tuple[V, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """The value kept under `key` if it is younger than `seconds`."""
        kept = self._values.get(key)
        if kept is not None and time.monotonic() - kept[1] < self.seconds:
            return kept[0]
        return None

    def put(self, keys: Iterable[Hashable], value: V) -> None:
        """Keep `value` under each of `keys` (one row, several ways to ask)."""
        now = time.monotonic()
        with self._lock:
            if len(self._values) >= self.max_size:
                self._values.clear()
            for key in keys:
                self._values[key] = (value, now)

    def kept(self) -> dict[Hashable, tuple[V, float]]:
        """A copy of what is kept: each key's value and when it was put."""
        return dict(self._values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
