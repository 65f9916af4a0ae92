"""An in-process cache: least recently used entries go first once the byte budget is spent.

One replica's memory, so hits are not shared between replicas; that is the Redis backend's
job. Every entry is charged its key, its value and ``ENTRY_OVERHEAD`` for the bookkeeping, so
``max_bytes`` bounds what the cache really holds. Expired entries are dropped when read, and
up to a few of them from the cold end whenever something is stored.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

ENTRY_OVERHEAD = 128  # bytes charged per entry: dict slot, tuple, expiry float, object headers
_SWEEP = 4  # expired entries dropped from the cold end per store


class MemoryCache:
    """LRU by bytes, with a TTL; implements :class:`fulcrum.cache.backend.CacheBackend`."""

    available = True

    def __init__(
        self,
        max_bytes: int,
        ttl: float,
        max_entry_bytes: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes <= 0 or ttl <= 0 or max_entry_bytes <= 0:
            raise ValueError("max_bytes, ttl and max_entry_bytes must be positive")
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.max_entry_bytes = max_entry_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes_used(self) -> int:
        return self._bytes

    async def get(self, key: str) -> bytes | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires, value = item
        if self._clock() >= expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes) -> bool:
        size = _size(key, value)
        if len(value) > self.max_entry_bytes or size > self.max_bytes:
            return False
        if key in self._entries:
            self._drop(key)
        now = self._clock()
        self._sweep(now)
        self._entries[key] = (now + self.ttl, value)
        self._bytes += size
        while self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
        return True

    async def aclose(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _sweep(self, now: float) -> None:
        for _ in range(_SWEEP):
            if not self._entries:
                return
            oldest = next(iter(self._entries))
            if now < self._entries[oldest][0]:
                return
            self._drop(oldest)

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= _size(key, value)


def _size(key: str, value: bytes) -> int:
    return len(key) + len(value) + ENTRY_OVERHEAD
