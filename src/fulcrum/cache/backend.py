"""The interface every cache backend (memory, Redis) offers the prompt cache stage.

Values are opaque bytes (an encoded :class:`fulcrum.cache.entry.CacheEntry`); keys are the
hex digests of :func:`fulcrum.cache.keys.cache_key`, which a backend may prefix. A backend
never raises for being unreachable: ``get`` answers None and ``set`` False, and ``available``
tells the stage whether that None was a miss or an outage.
"""

from __future__ import annotations

from typing import Protocol


class CacheBackend(Protocol):
    max_entry_bytes: int  # a value larger than this is never stored

    @property
    def available(self) -> bool:
        """False while the backend is known to be unreachable."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes) -> bool:
        """Store ``value``; False when it was not stored (too large, or unreachable)."""
        ...

    async def aclose(self) -> None: ...
