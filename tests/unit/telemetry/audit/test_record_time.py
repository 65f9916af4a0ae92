"""The audit record's ``time``: the fast formatter writes what ``datetime`` writes."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from fulcrum.accounting import iso_time


def reference(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


@pytest.mark.parametrize(
    "timestamp",
    [
        0.0,
        1_767_225_599.9995,  # rounds up into the next second (and year)
        1_767_225_599.9999995,  # microseconds round half-even
        1_767_225_599.9999994,
        1_700_000_000.0005,
        1_700_000_000.0000015,
        1_700_000_000.0000025,
        951_782_399.999,  # 2000-02-28T23:59:59.999
        -1.5,  # before the epoch
    ],
)
def test_edges_match_datetime(timestamp: float) -> None:
    assert iso_time(timestamp) == reference(timestamp)


def test_any_time_matches_datetime_in_any_order() -> None:
    rng = random.Random(5)
    times = [rng.uniform(-1e9, 4e9) for _ in range(20_000)]
    start = rng.uniform(1.6e9, 1.9e9)
    times += [start + i * 0.000_37 for i in range(20_000)]  # a busy gateway: many per second
    rng.shuffle(times)
    assert [iso_time(t) for t in times] == [reference(t) for t in times]
