"""Percentiles and summaries of the benchmark (pure helpers)."""

from __future__ import annotations

import math

import pytest
from bench.stats import Summary, difference, percentile, ratio


def test_percentile_interpolates_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 99) == pytest.approx(3.97)


def test_percentile_of_single_and_empty_samples() -> None:
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_percentile_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_sorts_its_input() -> None:
    s = Summary.of([3.0, 1.0, 2.0])
    assert (s.count, s.p50, s.max) == (3, 2.0, 3.0)
    assert s.mean == pytest.approx(2.0)
    assert math.isnan(Summary.of([]).p99)


def test_difference_and_ratio_handle_missing_values() -> None:
    assert difference(3.0, 1.0) == 2.0
    assert difference(None, 1.0) is None
    assert difference(math.nan, 1.0) is None
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) is None
    assert ratio(1.0, -1.0) is None
