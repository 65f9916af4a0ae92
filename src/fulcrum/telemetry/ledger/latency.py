"""A latency sketch that merges exactly: counts in fixed, logarithmically spaced buckets.

Why this shape: the ledger adds one flush to another, one replica's hour to another's, and one
hour to the next when a report spans days. Percentiles cannot be added, but bucket counts can,
and the sum of two histograms is the histogram of the union of their samples — so p50/p95 are
computed once, at query time, from the merged counts, and no order of merging changes them.

Layout (part of the stored format: changing it needs a migration that re-buckets the rows):
bucket 0 holds latencies up to ``MIN_SECONDS``; bucket ``i ≥ 1`` holds
``(MIN_SECONDS * GAMMA**(i-1), MIN_SECONDS * GAMMA**i]`` with
``GAMMA = (1 + ALPHA) / (1 - ALPHA)``; latencies above ``MAX_SECONDS`` are counted in the
last bucket. Counts are kept sparse (``{index: count}``): one row of the ledger usually
touches a few dozen of the ~380 buckets.

Error bound: the nearest-rank ``q``-quantile (the smallest sample with at least ``⌈q·n⌉``
samples at or below it) is reported within a relative error of ``ALPHA`` = 2 % when it lies
between 1 ms and 1 hour: that sample is in the reported bucket, and the bucket's
representative is at most ALPHA (relative) away from any value in it. At or below 1 ms it is
reported as 1 ms (absolute error under 1 ms); above an hour, as about an hour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

ALPHA = 0.02
GAMMA = (1 + ALPHA) / (1 - ALPHA)
MIN_SECONDS = 0.001
MAX_SECONDS = 3600.0
_LOG_GAMMA = math.log(GAMMA)
MAX_INDEX = math.ceil(math.log(MAX_SECONDS / MIN_SECONDS) / _LOG_GAMMA)

Counts = dict[int, int]
"""Bucket index → number of samples (only non-zero buckets are present)."""


def bucket_of(seconds: float) -> int:
    """The bucket that counts a latency of ``seconds`` (negative or NaN count as 0)."""
    if not seconds > MIN_SECONDS:
        return 0
    return min(MAX_INDEX, max(1, math.ceil(math.log(seconds / MIN_SECONDS) / _LOG_GAMMA)))


def representative(index: int) -> float:
    """The value reported for samples of bucket ``index``: within ``ALPHA`` of all of them."""
    if index <= 0:
        return MIN_SECONDS
    upper = MIN_SECONDS * GAMMA**index
    return 2 * upper / (1 + GAMMA)


def merge(*histograms: Mapping[int, int]) -> Counts:
    """The histogram of all the samples of ``histograms`` (a new dict; inputs untouched)."""
    total: Counts = {}
    for histogram in histograms:
        for index, count in histogram.items():
            total[index] = total.get(index, 0) + count
    return {index: count for index, count in total.items() if count}


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The nearest-rank ``q``-quantile (0 < q ≤ 1) within the module's bound; None if empty."""
    n = sum(histogram.values())
    if n <= 0:
        return None
    # round() first: 0.95 * 20 is 19.000000000000004 in floating point, and rank 19 is meant.
    rank = max(1, math.ceil(round(q * n, 9)))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return representative(index)
    return representative(max(histogram))  # unreachable while counts are positive


def histogram_of(samples: Iterable[float]) -> Counts:
    """The histogram of ``samples`` (tests and one-off use; the writer counts one by one)."""
    counts: Counts = {}
    for seconds in samples:
        index = bucket_of(seconds)
        counts[index] = counts.get(index, 0) + 1
    return counts


def encode(histogram: Mapping[int, int]) -> dict[str, int]:
    """The JSON object a ledger row stores (string keys, sorted by bucket)."""
    return {str(index): int(count) for index, count in sorted(histogram.items()) if count}


def decode(document: Mapping[str, object]) -> Counts:
    """A stored JSON object back into counts; bucket indexes outside the layout are clamped."""
    counts: Counts = {}
    for key, value in document.items():
        index = min(MAX_INDEX, max(0, int(key)))
        count = int(str(value))
        if count:
            counts[index] = counts.get(index, 0) + count
    return counts
