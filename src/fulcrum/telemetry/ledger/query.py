"""Reading the ledger: usage grouped the way an operator asks, and the decision engine's
hourly token volumes.

Rows are read for the window and grouped here (sums, then p50/p95 from the merged latency
histograms): percentiles cannot be computed in SQL from per-row percentiles, and grouping in
one place keeps SQLite and PostgreSQL answers identical.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fulcrum.econ.usage import HourlyVolume
from fulcrum.errors import UserError
from fulcrum.store.base import Store
from fulcrum.telemetry.ledger import latency
from fulcrum.telemetry.ledger.aggregate import BucketKey, Totals
from fulcrum.telemetry.ledger.record import floor_hour, hour_start
from fulcrum.telemetry.ledger.storage import read_buckets, read_volume

GROUPS = ("hour", "tenant", "model", "deployment", "workload", "backend")
"""What usage can be grouped by (any combination, in the order given)."""


@dataclass(frozen=True)
class UsageRow:
    """The usage of one group (``group`` pairs each ``by`` name with its value)."""

    group: tuple[tuple[str, str], ...]
    requests: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
    errors: int
    cache_hits: int
    saved_usd: float
    p50_seconds: float | None
    p95_seconds: float | None

    def as_json(self) -> dict[str, Any]:
        """Group values first, then the figures (the CLI's JSON and CSV row)."""
        return {
            **dict(self.group),
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "cost_usd": self.cost_usd,
            "errors": self.errors,
            "cache_hits": self.cache_hits,
            "saved_usd": self.saved_usd,
            "p50_seconds": _microseconds(self.p50_seconds),
            "p95_seconds": _microseconds(self.p95_seconds),
        }


def _microseconds(seconds: float | None) -> float | None:
    """Percentiles are ±2 % estimates: more digits than microseconds would be noise."""
    return None if seconds is None else round(seconds, 6)


def check_by(by: Sequence[str]) -> list[str]:
    """``by`` as a list, or a ``UserError`` for an unknown or repeated name."""
    unknown = [name for name in by if name not in GROUPS]
    if unknown:
        raise UserError(f"--by: unknown grouping {unknown[0]!r} (use {', '.join(GROUPS)})")
    if len(set(by)) != len(by):
        raise UserError("--by: a grouping is named twice")
    return list(by)


def group_value(key: BucketKey, name: str) -> str:
    """The value of grouping ``name`` for a bucket (hours as ``2026-03-01T09:00:00Z``)."""
    if name == "hour":
        return hour_start(key.hour).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(getattr(key, name))


def summarize(buckets: Iterable[tuple[BucketKey, Totals]], by: Sequence[str]) -> list[UsageRow]:
    """Buckets summed per group, sorted by group values (no ``by``: one row, the total)."""
    names = check_by(by)
    groups: dict[tuple[str, ...], Totals] = {}
    for key, totals in buckets:
        values = tuple(group_value(key, name) for name in names)
        existing = groups.get(values)
        if existing is None:
            groups[values] = existing = Totals()
        existing.absorb(totals)
    return [
        row_of(tuple(zip(names, values, strict=True)), groups[values]) for values in sorted(groups)
    ]


def row_of(group: tuple[tuple[str, str], ...], totals: Totals) -> UsageRow:
    """One group's figures, with percentiles from its merged histogram."""
    return UsageRow(
        group=group,
        requests=totals.requests,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        cached_tokens=totals.cached_tokens,
        cost_usd=totals.cost_usd,
        errors=totals.errors,
        cache_hits=totals.cache_hits,
        saved_usd=totals.saved_usd,
        p50_seconds=latency.percentile(totals.latency, 0.50),
        p95_seconds=latency.percentile(totals.latency, 0.95),
    )


@dataclass(frozen=True)
class UsageReport:
    """Grouped rows and the total over all of them (with its own merged percentiles)."""

    rows: list[UsageRow]
    total: UsageRow


def report_of(buckets: Sequence[tuple[BucketKey, Totals]], by: Sequence[str]) -> UsageReport:
    """``summarize`` plus the total, from one read of the buckets."""
    return UsageReport(summarize(buckets, by), summarize(buckets, [])[0] if buckets else _empty())


def _empty() -> UsageRow:
    return row_of((), Totals())


async def usage_report(
    store: Store, since: datetime, until: datetime, by: Sequence[str]
) -> UsageReport:
    """Usage of every hour that overlaps ``[since, until)``, grouped by ``by``, and its total."""
    names = check_by(by)
    return report_of(await read_buckets(store, floor_hour(since), until), names)


async def usage_rows(
    store: Store, since: datetime, until: datetime, by: Sequence[str]
) -> list[UsageRow]:
    """Usage of every hour that overlaps ``[since, until)``, grouped by ``by``."""
    names = check_by(by)
    return summarize(await read_buckets(store, floor_hour(since), until), names)


async def hourly_volume(store: Store, since: datetime, until: datetime) -> list[HourlyVolume]:
    """Billed input + output tokens per hour x workload x backend, ``since <= hour < until``.

    ``backend`` is ``bedrock`` or ``self_hosted``; requests no upstream served (cache hits,
    refusals) have no volume. Sorted by hour, then workload and backend.
    """
    return await read_volume(store, since, until)
