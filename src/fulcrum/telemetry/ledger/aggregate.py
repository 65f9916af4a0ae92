"""Events into hourly buckets: the in-memory half of the ledger, and the merge rules it shares
with the database.

A bucket is one (hour, tenant, model, deployment, backend, workload); its ``Totals`` are sums
and a latency histogram, so two buckets of the same key merge by adding — the same rule the
flush's upsert applies in SQL, which is why several replicas and several flushes can write one
row in any order. Money is kept in integer nano-dollars: sums of integers do not depend on the
order of addition (floats do), and rounding one request's cost to 1e-9 USD is far below any
price the catalogue knows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from fulcrum.telemetry.ledger import latency
from fulcrum.telemetry.ledger.record import UsageEvent, hour_of

NANOS_PER_USD = 1_000_000_000


class BucketKey(NamedTuple):
    """Where an event is counted: ``hour`` is epoch seconds of the start of its UTC hour."""

    hour: int
    tenant: str
    model: str
    deployment: str
    backend: str
    workload: str


@dataclass(slots=True)
class Totals:
    """The sums of one bucket. Mutable on purpose: the hot path adds to it in place."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_nanousd: int = 0
    errors: int = 0
    cache_hits: int = 0
    saved_nanousd: int = 0
    latency: latency.Counts = field(default_factory=dict)

    def add(self, event: UsageEvent) -> None:
        """Count one event (O(1): a few additions and one dict update)."""
        self.requests += 1
        self.input_tokens += event.input_tokens
        self.output_tokens += event.output_tokens
        self.cached_tokens += event.cached_tokens
        self.cost_nanousd += to_nanos(event.cost_usd)
        self.errors += event.error
        self.cache_hits += event.cache_hit
        self.saved_nanousd += to_nanos(event.saved_usd)
        if event.latency_seconds is not None:
            index = latency.bucket_of(event.latency_seconds)
            self.latency[index] = self.latency.get(index, 0) + 1

    def absorb(self, other: Totals) -> None:
        """Add ``other`` into this bucket (``other`` is left as it was)."""
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_tokens += other.cached_tokens
        self.cost_nanousd += other.cost_nanousd
        self.errors += other.errors
        self.cache_hits += other.cache_hits
        self.saved_nanousd += other.saved_nanousd
        self.latency = latency.merge(self.latency, other.latency)

    @property
    def cost_usd(self) -> float:
        return self.cost_nanousd / NANOS_PER_USD

    @property
    def saved_usd(self) -> float:
        return self.saved_nanousd / NANOS_PER_USD


def to_nanos(usd: float) -> int:
    """Dollars to integer nano-dollars (rounded to the nearest)."""
    return round(usd * NANOS_PER_USD)


def key_of(event: UsageEvent) -> BucketKey:
    """The bucket an event is counted in."""
    return BucketKey(
        hour_of(event.time),
        event.tenant,
        event.model,
        event.deployment,
        event.backend,
        event.workload,
    )


def merged(*totals: Totals) -> Totals:
    """The sum of several buckets' totals, as a new ``Totals``."""
    result = Totals()
    for item in totals:
        result.absorb(item)
    return result


def aggregate(events: Iterable[UsageEvent]) -> dict[BucketKey, Totals]:
    """Events into buckets (what the writer does one event at a time)."""
    buckets: dict[BucketKey, Totals] = {}
    for event in events:
        key = key_of(event)
        totals = buckets.get(key)
        if totals is None:
            totals = buckets[key] = Totals()
        totals.add(event)
    return buckets


def merge_buckets(*parts: Mapping[BucketKey, Totals]) -> dict[BucketKey, Totals]:
    """Buckets from several sources (flushes, replicas) summed key by key; inputs untouched."""
    result: dict[BucketKey, Totals] = {}
    for part in parts:
        for key, totals in part.items():
            existing = result.get(key)
            if existing is None:
                result[key] = merged(totals)
            else:
                existing.absorb(totals)
    return result
