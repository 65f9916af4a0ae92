"""Exact break-even between the API and self-hosted GPUs (pure, rational arithmetic).

API(V) = a·V is a line; self(V) = n(V)·c + F + e·V is a staircase of lines, one per instance
count n, because instances come in whole units. Self-hosted can therefore win, lose and win
again as volume grows. On step k (the volumes that need k instances) self ≤ API exactly when
``k·c + F ≤ (a - e)·V``, i.e. from ``t_k = (k·c + F) / (a - e)`` to the step's end ``k·cap``.
With ``g = (a - e)·cap - c`` (what a full instance saves against the API):

* step k wins at its end iff ``k·g ≥ F``;
* step k wins entirely (k > m) iff ``k·g ≥ F + (a - e)·cap``, and then so do all later steps.

So there is nothing to scan: the first winning step and the first fully-winning step follow
from two divisions, and the intervals in between are one per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from fulcrum.econ.cost import CostModel

MAX_INTERVALS = 1000
Number = float | int | Fraction


@dataclass(frozen=True)
class BreakEven:
    """Where self-hosted costs no more than the API. ``hi`` is None for an open interval."""

    intervals: tuple[tuple[float, float | None], ...]
    omitted: int = 0  # intervals between the first ones and the open one, not listed
    periodic: bool = field(default=False)  # wins only at every step's end, forever

    @property
    def never(self) -> bool:
        """True when self-hosted never costs less than or the same as the API."""
        return not self.intervals

    @property
    def first(self) -> float | None:
        """The smallest volume where self-hosted ≤ API."""
        return self.intervals[0][0] if self.intervals else None

    @property
    def sustained(self) -> float | None:
        """The smallest volume from which self-hosted ≤ API at every higher volume."""
        if self.intervals and self.intervals[-1][1] is None and not self.periodic:
            return self.intervals[-1][0]
        return None

    def as_json(self) -> dict[str, Any]:
        """The `break_even` object of the JSON contract."""
        return {
            "never": self.never,
            "first_tokens": self.first,
            "sustained_tokens": self.sustained,
            "intervals": [[lo, hi] for lo, hi in self.intervals],
            "intervals_omitted": self.omitted,
        }


def _up(value: Fraction) -> float:
    """The smallest float ≥ value (a reported start is a volume where self-hosted wins)."""
    out = float(value)
    return math.nextafter(out, math.inf) if Fraction(out) < value else out


def _down(value: Fraction) -> float:
    """The largest float ≤ value (a reported end still needs the same instance count)."""
    out = float(value)
    return math.nextafter(out, -math.inf) if Fraction(out) > value else out


def solve(
    api_per_token: Number,
    egress_per_token: Number,
    instance_monthly: Number,
    fixed: Number,
    capacity: Number,
    min_instances: int,
    limit: int = MAX_INTERVALS,
) -> BreakEven:
    """Every volume interval where ``n(V)·c + F + e·V ≤ a·V``, exactly."""
    a, e, c, f, cap = (
        Fraction(x) for x in (api_per_token, egress_per_token, instance_monthly, fixed, capacity)
    )
    m = min_instances
    if c <= 0 or cap <= 0 or f < 0 or m < 0:
        raise ValueError("instance cost and capacity must be > 0; fixed cost and m ≥ 0")
    d = a - e
    intervals: list[tuple[float, float | None]] = []
    if m == 0 and f == 0:  # no instance, no fixed cost: both cost 0 at V = 0
        intervals.append((0.0, 0.0))
    g = d * cap - c
    if d <= 0 or g < 0 or (g == 0 and f > 0):
        return BreakEven(tuple(intervals))

    def start(k: int) -> float:
        return _up((k * c + f) / d)

    def end(k: int) -> float:
        return _down(k * cap)

    first_step = max(m, 1)
    if g == 0:  # f == 0: t_k = k·cap, a single winning volume at the end of every step
        for k in range(first_step, first_step + limit):
            intervals.append((end(k), end(k)))
        return BreakEven(tuple(intervals), omitted=0, periodic=True)
    k1 = max(first_step, math.ceil(f / g))
    ks = max(m + 1, math.ceil((f + d * cap) / g))  # first step that wins entirely
    partial = ks - 1 - k1  # steps k1 … ks-2 give closed intervals; ks-1 opens the last one
    shown = min(partial, max(limit - 1, 0))
    for k in range(k1, k1 + shown):
        lo, hi = start(k), end(k)
        intervals.append((min(lo, hi), hi))
    intervals.append((start(ks - 1), None))
    return BreakEven(tuple(intervals), omitted=partial - shown)


def break_even(model: CostModel, limit: int = MAX_INTERVALS) -> BreakEven:
    """The break-even of a scenario's cost model."""
    return solve(
        model.api_per_token,
        model.egress_per_token,
        model.instance_monthly,
        model.fixed,
        model.capacity,
        model.min_instances,
        limit,
    )
