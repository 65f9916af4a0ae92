"""Prompt caching: which prompt prefixes are "in the cache", and what a request is charged.

A ``cachePoint`` block marks a checkpoint; the prefix before it (tools, then system, then
messages) is identified by a hash computed while parsing. For one request:

* the longest checkpoint whose prefix is cached is a **cache read** of its tokens;
* the tokens from there to the last checkpoint are a **cache write**, and every checkpoint of
  the request becomes cached (for its TTL: ``5m`` by default, ``1h`` when asked);
* the rest of the prompt is ordinary ``inputTokens``.

Checkpoints with fewer prompt tokens before them than the model's minimum have no effect, and
models without prompt caching ignore them. Reads refresh the TTL. The time is passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from fulcrum.sim.bedrock.protocol import CachePoint

MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class CacheCharge:
    read: int
    write: int


class PromptCache:
    """Cached prompt prefixes with expiry times (bounded; the oldest entries go first)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[bytes, float] = OrderedDict()
        self._max = max_entries

    def _alive(self, key: bytes, now: float) -> bool:
        expiry = self._entries.get(key)
        if expiry is None:
            return False
        if expiry <= now:
            del self._entries[key]
            return False
        return True

    def charge(self, points: Sequence[CachePoint], min_tokens: int, now: float) -> CacheCharge:
        """Tokens read from and written to the cache by a request with these checkpoints."""
        usable = [p for p in points if p.tokens >= min_tokens and p.tokens > 0]
        if not usable:
            return CacheCharge(0, 0)
        read = 0
        for point in usable:
            if self._alive(point.key, now):
                read = max(read, point.tokens)
        write = max(0, usable[-1].tokens - read)
        for point in usable:
            self._entries[point.key] = max(self._entries.get(point.key, 0.0), now + point.ttl_s)
            self._entries.move_to_end(point.key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return CacheCharge(read, write)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
