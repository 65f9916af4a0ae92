"""Quotas and Provisioned Throughput capacity: sliding 60-second windows of requests and tokens.

Every quota key (a foundation model id, an inference-profile id or a Provisioned Throughput
ARN) has one window. A request is admitted when, counting what was admitted in the last 60
seconds,

* ``requests + 1 <= rpm`` (when the key has a requests-per-minute quota), and
* ``tokens + estimate <= tpm`` (when it has a tokens-per-minute quota or capacity).

The estimate is Bedrock's token burndown at the start of a request: input tokens plus
``maxTokens`` (or the model's output limit when ``maxTokens`` is not given). When the request
ends its charge is settled to the real input + output tokens, as Bedrock adjusts the quota
afterwards. A rejected request is not counted. Entries leave the window 60 seconds after their
admission; a settlement arriving after that is dropped.

Everything takes the current time as an argument, so the arithmetic is unit-tested without
sleeping.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOW_S = 60.0

REQUESTS = "requests"
TOKENS = "tokens"


class Entry:
    """One admitted request in a window."""

    __slots__ = ("at", "expired", "tokens")

    def __init__(self, at: float, tokens: int) -> None:
        self.at = at
        self.tokens = tokens
        self.expired = False


@dataclass(frozen=True, slots=True)
class Usage:
    requests: int
    tokens: int


class SlidingWindow:
    """Requests and tokens admitted during the last :data:`WINDOW_S` seconds."""

    __slots__ = ("_entries", "requests", "tokens", "window_s")

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._entries: deque[Entry] = deque()
        self.requests = 0
        self.tokens = 0

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        entries = self._entries
        while entries and entries[0].at <= horizon:
            entry = entries.popleft()
            entry.expired = True
            self.requests -= 1
            self.tokens -= entry.tokens

    def usage(self, now: float) -> Usage:
        self._expire(now)
        return Usage(self.requests, self.tokens)

    def try_admit(self, now: float, estimate: int, rpm: int | None, tpm: int | None) -> Entry | str:
        """The admitted entry, or which limit refused it (``"requests"`` or ``"tokens"``)."""
        self._expire(now)
        if rpm is not None and self.requests + 1 > rpm:
            return REQUESTS
        if tpm is not None and self.tokens + estimate > tpm:
            return TOKENS
        entry = Entry(now, estimate)
        self._entries.append(entry)
        self.requests += 1
        self.tokens += estimate
        return entry

    def settle(self, entry: Entry, actual: int) -> None:
        """Replace ``entry``'s estimate by the tokens it really used."""
        if entry.expired:
            return
        self.tokens += actual - entry.tokens
        entry.tokens = actual


class Limiter:
    """One :class:`SlidingWindow` per quota key."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self._window_s = window_s
        self._windows: dict[str, SlidingWindow] = {}

    def window(self, key: str) -> SlidingWindow:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = SlidingWindow(self._window_s)
        return window

    def snapshot(self, now: float) -> dict[str, Usage]:
        return {key: window.usage(now) for key, window in self._windows.items()}

    def reset(self) -> None:
        self._windows.clear()
