"""The latency sketch: bucket layout, the documented error bound, and exact merging."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.telemetry.ledger import latency
from fulcrum.telemetry.ledger.latency import (
    ALPHA,
    GAMMA,
    MAX_INDEX,
    MAX_SECONDS,
    MIN_SECONDS,
    bucket_of,
    decode,
    encode,
    histogram_of,
    merge,
    percentile,
    representative,
)

# Latencies spread evenly in log space between just above 1 ms and 1 hour.
in_range = st.floats(min_value=math.log10(MIN_SECONDS) + 1e-6, max_value=math.log10(MAX_SECONDS))
latencies = st.lists(in_range.map(lambda e: 10.0**e), min_size=1, max_size=400)
histograms = st.dictionaries(
    st.integers(min_value=0, max_value=MAX_INDEX), st.integers(min_value=1, max_value=1000)
)


def true_quantile(samples: list[float], q: float) -> float:
    """The nearest-rank quantile, the definition the sketch documents."""
    return float(np.quantile(np.array(samples), q, method="inverted_cdf"))


def test_the_layout_covers_one_ms_to_one_hour() -> None:
    assert bucket_of(0.0) == bucket_of(MIN_SECONDS) == bucket_of(-1.0) == 0
    assert bucket_of(float("nan")) == 0
    assert bucket_of(MIN_SECONDS * 1.0001) == 1
    assert bucket_of(MAX_SECONDS) == MAX_INDEX
    assert bucket_of(10 * MAX_SECONDS) == MAX_INDEX  # clamped, not a new bucket
    assert 350 < MAX_INDEX < 400


@pytest.mark.parametrize("index", [1, 2, 17, 100, 250, MAX_INDEX - 1])
def test_a_representative_is_within_alpha_of_both_edges_of_its_bucket(index: int) -> None:
    lower, upper = MIN_SECONDS * GAMMA ** (index - 1), MIN_SECONDS * GAMMA**index
    value = representative(index)
    assert lower < value < upper
    assert abs(value - lower) / lower == pytest.approx(ALPHA)
    assert abs(value - upper) / upper == pytest.approx(ALPHA)


@settings(max_examples=200, deadline=None)
@given(latencies, st.sampled_from([0.5, 0.95, 0.01, 0.99, 1.0]))
def test_percentiles_are_within_the_documented_bound(samples: list[float], q: float) -> None:
    estimate = percentile(histogram_of(samples), q)
    truth = true_quantile(samples, q)
    assert estimate is not None
    assert abs(estimate - truth) <= ALPHA * truth * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(latencies, st.floats(min_value=0.001, max_value=1.0))
def test_any_quantile_is_within_the_bound(samples: list[float], q: float) -> None:
    estimate = percentile(histogram_of(samples), q)
    truth = true_quantile(samples, q)
    assert estimate is not None
    assert abs(estimate - truth) <= ALPHA * truth * (1 + 1e-9)


def test_on_a_large_skewed_sample_too() -> None:
    rng = random.Random(7)
    samples = [rng.lognormvariate(-1.0, 1.2) for _ in range(100_000)]
    counts = histogram_of(samples)
    for q in (0.5, 0.95):
        truth = true_quantile(samples, q)
        assert abs(percentile(counts, q) - truth) <= ALPHA * truth  # type: ignore[operator]


def test_below_one_ms_is_reported_as_one_ms_and_empty_is_none() -> None:
    assert percentile(histogram_of([0.0002, 0.0005, 0.0]), 0.5) == MIN_SECONDS
    assert percentile({}, 0.5) is None


@settings(max_examples=100, deadline=None)
@given(st.lists(latencies, min_size=1, max_size=6), st.randoms())
def test_merging_in_any_order_gives_the_histogram_of_all_samples(
    parts: list[list[float]], rng: random.Random
) -> None:
    shuffled = [histogram_of(part) for part in parts]
    rng.shuffle(shuffled)
    everything = histogram_of([value for part in parts for value in part])
    # left fold, right fold and one n-ary merge all agree
    left: latency.Counts = {}
    for histogram in shuffled:
        left = merge(left, histogram)
    right: latency.Counts = {}
    for histogram in reversed(shuffled):
        right = merge(histogram, right)
    assert left == right == merge(*shuffled) == everything
    for q in (0.5, 0.95):
        assert percentile(left, q) == percentile(everything, q)


@given(histograms, histograms)
def test_merge_leaves_its_inputs_alone(a: dict[int, int], b: dict[int, int]) -> None:
    before = (dict(a), dict(b))
    merge(a, b)
    assert (a, b) == before


@given(histograms)
def test_encode_decode_round_trip(histogram: dict[int, int]) -> None:
    stored = encode(histogram)
    assert all(isinstance(key, str) for key in stored)
    assert decode(stored) == histogram


def test_decode_clamps_foreign_indexes_and_skips_zero_counts() -> None:
    assert decode({"-3": 1, "0": 2, str(MAX_INDEX + 50): 4, "12": 0}) == {0: 3, MAX_INDEX: 4}
