"""Exact sliding-window logs and concurrency leases, in memory (times in epoch milliseconds).

A window holds one entry per admitted request (its time and tokens) for ``WINDOW_MS``: the
request count is the number of entries, the token count a running total that expired entries
leave as they go. Unlike a fixed window it never admits twice the limit at a boundary; unlike a
token bucket nothing refills during a burst. The Redis scripts implement the same log with a
sorted set and a hash.
"""

from __future__ import annotations

from collections import deque

from fulcrum.limits.checks import LEASE_MS, WINDOW_MS


class _Entry:
    __slots__ = ("at", "id", "tokens")

    def __init__(self, id: str, at: int, tokens: int) -> None:
        self.id = id
        self.at = at
        self.tokens = tokens


class SlidingWindow:
    """The requests of one scope in the last minute, oldest first."""

    __slots__ = ("_by_id", "_entries", "span_ms", "tokens")

    def __init__(self, span_ms: int = WINDOW_MS) -> None:
        self.span_ms = span_ms
        self._entries: deque[_Entry] = deque()
        self._by_id: dict[str, _Entry] = {}
        self.tokens = 0

    @property
    def requests(self) -> int:
        return len(self._entries)

    def prune(self, now_ms: int) -> None:
        """Drop the entries that left the window (at or before ``now - span``)."""
        cutoff = now_ms - self.span_ms
        entries = self._entries
        while entries and entries[0].at <= cutoff:
            entry = entries.popleft()
            self.tokens -= entry.tokens
            del self._by_id[entry.id]

    def add(self, id: str, now_ms: int, tokens: int) -> None:
        # Entries stay in time order even if the wall clock steps back.
        at = max(now_ms, self._entries[-1].at) if self._entries else now_ms
        entry = _Entry(id, at, tokens)
        self._entries.append(entry)
        self._by_id[id] = entry
        self.tokens += tokens

    def replace(self, id: str, tokens: int) -> None:
        """Settle: the entry now counts its real tokens (no-op once it has left the window)."""
        entry = self._by_id.get(id)
        if entry is not None:
            self.tokens += tokens - entry.tokens
            entry.tokens = tokens

    def reset_ms(self, now_ms: int) -> int:
        """Milliseconds until the oldest entry leaves (0 when empty)."""
        if not self._entries:
            return 0
        return max(0, self._entries[0].at + self.span_ms - now_ms)

    def retry_requests_ms(self, limit: int, now_ms: int) -> int:
        """Milliseconds until one more request fits under ``limit``."""
        excess = len(self._entries) - limit  # entries that must leave first, minus one
        if excess < 0:
            return 0
        return max(0, self._entries[excess].at + self.span_ms - now_ms)

    def retry_tokens_ms(self, limit: int, tokens: int, now_ms: int) -> int:
        """Milliseconds until ``tokens`` more fit under ``limit`` as old entries leave."""
        need = self.tokens + tokens - limit
        if need <= 0:
            return 0
        freed = 0
        for entry in self._entries:
            freed += entry.tokens
            if freed >= need:
                return max(0, entry.at + self.span_ms - now_ms)
        return self.span_ms  # cannot happen while tokens <= limit; a safe answer anyway


class Leases:
    """Requests of one scope in flight; each lease expires so a lost settlement heals."""

    __slots__ = ("_expiry", "ttl_ms")

    def __init__(self, ttl_ms: int = LEASE_MS) -> None:
        self.ttl_ms = ttl_ms
        self._expiry: dict[str, int] = {}  # insertion order is expiry order (constant ttl)

    def __len__(self) -> int:
        return len(self._expiry)

    def prune(self, now_ms: int) -> None:
        expiry = self._expiry
        while expiry:
            first = next(iter(expiry))
            if expiry[first] > now_ms:
                break
            del expiry[first]

    def add(self, id: str, now_ms: int) -> None:
        self._expiry[id] = now_ms + self.ttl_ms

    def release(self, id: str) -> None:
        self._expiry.pop(id, None)
