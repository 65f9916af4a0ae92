"""Percentiles and latency summaries: pure functions, so they can be unit-tested without servers.

Percentiles use linear interpolation between closest ranks (the same definition as numpy's
default), so small samples give stable, explainable numbers rather than jumping between
neighbouring observations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already-sorted values; NaN for an empty sample."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if n == 1:
        return float(sorted_values[0])
    rank = (n - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    frac = rank - low
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * frac)


@dataclass(frozen=True)
class Summary:
    """Distribution of one latency sample, in seconds."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        """Summarise ``values`` (any order); every field is NaN when the sample is empty."""
        ordered = sorted(values)
        if not ordered:
            nan = math.nan
            return cls(count=0, mean=nan, p50=nan, p90=nan, p99=nan, max=nan)
        return cls(
            count=len(ordered),
            mean=math.fsum(ordered) / len(ordered),
            p50=percentile(ordered, 50),
            p90=percentile(ordered, 90),
            p99=percentile(ordered, 99),
            max=ordered[-1],
        )


def difference(value: float | None, baseline: float | None) -> float | None:
    """``value - baseline``, or None when either side is missing or NaN."""
    if value is None or baseline is None or math.isnan(value) or math.isnan(baseline):
        return None
    return value - baseline


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``, or None when undefined (missing, NaN, or a baseline ≤ 0)."""
    if value is None or baseline is None or math.isnan(value) or math.isnan(baseline):
        return None
    if baseline <= 0:
        return None
    return value / baseline
