"""Provisioned Throughput accounting: fill the committed capacity first, spill the rest.

A Bedrock Provisioned Throughput deployment is paid for by the hour whether it is used or not,
so the gateway sends it as much as it can take. Bedrock throttles a PT model beyond its
capacity; the gateway avoids that by counting the tokens it has sent in the last minute and
spilling a request to on-demand when its estimate would not fit under ``capacity_tpm`` times a
safety ``headroom``. Admission reserves the estimate; accounting settles the real count.

This is the accounting of one gateway replica: with several replicas, give each its share of
the capacity (or keep the counts in a shared store behind the same interface).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping


class TokenWindow:
    """Tokens counted over a sliding window, bucketed so add and used are O(1) amortised.

    The window slides in steps of ``resolution`` seconds: tokens added at ``t`` stop counting
    at the start of the bucket ``window`` seconds after the bucket of ``t``, i.e. between
    ``window - resolution`` and ``window`` seconds later.
    """

    def __init__(self, window: float = 60.0, resolution: float = 1.0) -> None:
        if not window > 0.0 or not resolution > 0.0:
            raise ValueError("window and resolution must be positive")
        self._resolution = resolution
        self._buckets_per_window = max(1, math.ceil(window / resolution))
        self._buckets: deque[list[float]] = deque()  # [bucket index, tokens]
        self._total = 0.0

    def add(self, tokens: float, now: float) -> None:
        """Count ``tokens`` at ``now`` (negative to take back an over-estimate)."""
        index = self._expire(now)
        if self._buckets and self._buckets[-1][0] >= index:
            self._buckets[-1][1] += tokens
        else:
            self._buckets.append([index, tokens])
        self._total += tokens

    def used(self, now: float) -> float:
        """Tokens counted in the window ending at ``now``; never negative."""
        self._expire(now)
        return max(0.0, self._total)

    def _expire(self, now: float) -> int:
        index = math.floor(now / self._resolution)
        oldest_kept = index - self._buckets_per_window + 1
        while self._buckets and self._buckets[0][0] < oldest_kept:
            self._total -= self._buckets.popleft()[1]
        if not self._buckets:
            self._total = 0.0  # drop accumulated float error whenever the window empties
        return index


class ProvisionedCapacity:
    """Token budgets of the PT deployments: what still fits, and how full each one is.

    A deployment with ``capacity_tpm`` tokens per minute may take, within any ``window``
    seconds, ``capacity_tpm * window / 60`` tokens; a reservation is accepted while
    ``used + estimated <= headroom * that``. Utilisation is ``used / that`` (headroom not
    applied, so 1.0 means the full commitment is in use).
    """

    def __init__(
        self,
        capacities_tpm: Mapping[str, float],
        headroom: float = 0.95,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 < headroom <= 1.0:
            raise ValueError("headroom must be in (0, 1]")
        for name, tpm in capacities_tpm.items():
            if not tpm > 0.0:
                raise ValueError(f"capacity_tpm of {name} must be positive")
        self._capacity = {name: tpm * window / 60.0 for name, tpm in capacities_tpm.items()}
        self._used = {name: TokenWindow(window) for name in capacities_tpm}
        self._headroom = headroom
        self._clock = clock

    def __contains__(self, name: object) -> bool:
        return name in self._capacity

    def reserve(self, name: str, estimated_tokens: float) -> bool:
        """Count the estimate against ``name`` if it fits; False means spill to on-demand."""
        window = self._used[name]
        now = self._clock()
        if window.used(now) + estimated_tokens > self._capacity[name] * self._headroom:
            return False
        window.add(estimated_tokens, now)
        return True

    def settle(self, name: str, estimated: float, actual: float) -> None:
        """Replace a reservation's estimate by the real count (0 if the call never ran).

        The difference lands in the current second, not in the reservation's: for a call
        shorter than the window that only moves ``|actual - estimated|`` tokens in time by
        the call's duration.
        """
        if actual != estimated:
            self._used[name].add(actual - estimated, self._clock())

    def utilization(self, name: str) -> float:
        """Share of the committed capacity used in the window (may exceed 1 on overshoot)."""
        return self._used[name].used(self._clock()) / self._capacity[name]
