"""Per-deployment circuit breaker: stop sending traffic to a deployment that keeps failing.

A closed breaker lets everything through and watches outcomes; it opens after
``consecutive_failures`` failures in a row, or when the failure share over the last ``window``
seconds reaches ``failure_rate`` with at least ``min_requests`` outcomes seen (so one failure on
a quiet deployment is not a 100 % failure rate). An open breaker refuses everything until its
cool-down ends, then turns half-open: a few probe requests may go through; ``close_after``
successes close it, any failure opens it again for a new cool-down.

The breaker is told outcomes; it never measures time itself (the clock is injected) and never
decides what counts as a failure (the caller does: a 400 is the client's fault, a 503 is not).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half_open"]

#: The failure-rate window is kept as this many buckets, so memory does not grow with traffic.
_BUCKETS_PER_WINDOW = 30


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a breaker opens, how long it stays open, and how it tests the water again."""

    consecutive_failures: int = 5
    failure_rate: float = 0.5
    window: float = 30.0
    min_requests: int = 20
    cooldown: float = 15.0
    half_open_probes: int = 2
    close_after: int = 2

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("consecutive_failures must be at least 1")
        if not 0.0 < self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be in (0, 1]")
        if not self.window > 0.0:
            raise ValueError("window must be positive")
        if self.min_requests < 1:
            raise ValueError("min_requests must be at least 1")
        if not self.cooldown >= 0.0:
            raise ValueError("cooldown must not be negative")
        if self.half_open_probes < 1:
            raise ValueError("half_open_probes must be at least 1")
        if self.close_after < 1:
            raise ValueError("close_after must be at least 1")


class _OutcomeWindow:
    """Outcome and failure counts over a sliding window, bucketed so updates are O(1)."""

    def __init__(self, window: float) -> None:
        self._width = window / _BUCKETS_PER_WINDOW
        # Each bucket is [index, outcomes, failures]; index = floor(time / width).
        self._buckets: deque[list[int]] = deque()
        self.total = 0
        self.failures = 0

    def add(self, now: float, failed: bool) -> None:
        index = self._expire(now)
        if self._buckets and self._buckets[-1][0] >= index:
            bucket = self._buckets[-1]
        else:
            bucket = [index, 0, 0]
            self._buckets.append(bucket)
        bucket[1] += 1
        self.total += 1
        if failed:
            bucket[2] += 1
            self.failures += 1

    def clear(self) -> None:
        self._buckets.clear()
        self.total = self.failures = 0

    def _expire(self, now: float) -> int:
        index = math.floor(now / self._width)
        oldest_kept = index - _BUCKETS_PER_WINDOW + 1
        while self._buckets and self._buckets[0][0] < oldest_kept:
            _, outcomes, failures = self._buckets.popleft()
            self.total -= outcomes
            self.failures -= failures
        return index


class CircuitBreaker:
    """The breaker of one deployment. Not thread-safe: it lives on the event loop."""

    def __init__(
        self,
        settings: BreakerSettings,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._on_change = on_change
        self._state: State = "closed"
        self._consecutive = 0
        self._outcomes = _OutcomeWindow(settings.window)
        self._open_until = 0.0
        self._probes = 0  # half-open requests let through whose verdict is still pending
        self._probe_successes = 0

    @property
    def state(self) -> State:
        """The current state; an open breaker whose cool-down ended reads as half-open."""
        if self._state == "open" and self._clock() >= self._open_until:
            self._probes = self._probe_successes = 0
            self._transition("half_open")
        return self._state

    def allow(self) -> bool:
        """May a request go to this deployment now? In half-open, a True takes a probe slot."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        if self._probes < self._settings.half_open_probes:
            self._probes += 1
            return True
        return False

    def record_success(self) -> None:
        state = self.state
        if state == "closed":
            self._consecutive = 0
            self._outcomes.add(self._clock(), failed=False)
        elif state == "half_open":
            self._free_probe()
            self._probe_successes += 1
            if self._probe_successes >= self._settings.close_after:
                self._close()
        # Open: a late verdict on a request let through before the breaker opened says
        # nothing about the deployment now.

    def record_failure(self) -> None:
        state = self.state
        if state == "half_open":
            self._open(self._settings.cooldown)
        elif state == "closed":
            self._consecutive += 1
            self._outcomes.add(self._clock(), failed=True)
            if self._tripped():
                self._open(self._settings.cooldown)

    def cool_down(self, seconds: float) -> None:
        """Honour an upstream retry hint (a 429's Retry-After): stay open at least that long."""
        if not seconds > 0.0:
            return
        until = self._clock() + seconds
        if self.state == "open":
            self._open_until = max(self._open_until, until)
        else:
            self._open(seconds)

    def release(self) -> None:
        """A probe ended without a verdict (the client went away): give its slot back."""
        if self.state == "half_open":
            self._free_probe()

    def _tripped(self) -> bool:
        settings = self._settings
        if self._consecutive >= settings.consecutive_failures:
            return True
        window = self._outcomes
        # Checked on failures only: a success never makes the failure rate worse than it was
        # at the last failure, and opening on a success would be perverse.
        return (
            window.total >= settings.min_requests
            and window.failures >= settings.failure_rate * window.total
        )

    def _free_probe(self) -> None:
        # Clamped: a request admitted while still closed may report in half-open.
        self._probes = max(0, self._probes - 1)

    def _open(self, seconds: float) -> None:
        self._open_until = self._clock() + seconds
        self._probes = self._probe_successes = 0
        self._transition("open")

    def _close(self) -> None:
        self._consecutive = 0
        self._outcomes.clear()
        self._probes = self._probe_successes = 0
        self._transition("closed")

    def _transition(self, state: State) -> None:
        # Callers only ever move to a different state: every call is a real change.
        self._state = state
        if self._on_change is not None:
            self._on_change(state)
