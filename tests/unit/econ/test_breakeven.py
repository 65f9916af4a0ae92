"""The exact step-function break-even: hand-derived cases and properties."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.econ.breakeven import break_even, solve
from fulcrum.econ.cost import CostModel
from fulcrum.econ.scenario import parse_scenario, resolve_scenario


def same(actual, expected) -> bool:
    """Intervals equal up to float rounding of the inputs (1e-6 is not exact in binary)."""
    return len(actual) == len(expected) and all(
        lo == pytest.approx(elo, rel=1e-12)
        and (hi is None if ehi is None else hi == pytest.approx(ehi, rel=1e-12))
        for (lo, hi), (elo, ehi) in zip(actual, expected, strict=True)
    )


def test_several_winning_intervals_then_sustained() -> None:
    # a = 1e-6 $/token, c = 1000 $/instance, F = 1200, cap = 1.5e9, m = 1.
    # Step k (volumes ((k-1)·cap, k·cap]) wins from t_k = (1000k + 1200) / 1e-6:
    #   k=1: t=2.2e9 > 1.5e9 lose; k=2: t=3.2e9 > 3.0e9 lose;
    #   k=3: t=4.2e9 <= 4.5e9 win [4.2e9, 4.5e9]; k=4: t=5.2e9 <= 6.0e9 win [5.2e9, 6.0e9];
    #   k=5: t=6.2e9 <= 7.5e9 win, and step 6 wins entirely (t_6 = 7.2e9 <= 7.5e9) -> open.
    result = solve(1e-6, 0, 1000, 1200, 1.5e9, 1)
    assert same(result.intervals, ((4.2e9, 4.5e9), (5.2e9, 6.0e9), (6.2e9, None)))
    assert result.first == pytest.approx(4.2e9)
    assert result.sustained == pytest.approx(6.2e9)
    assert not result.never


def test_never_when_an_instance_costs_more_than_the_api_for_its_tokens() -> None:
    # a full instance serves 1e9 tokens = 1000 $ of API, but costs 1500 $
    result = solve(1e-6, 0, 1500, 0, 1e9, 1)
    assert result.never
    assert result.first is None and result.sustained is None
    assert result.as_json()["intervals"] == []


def test_first_is_sustained_when_every_later_step_wins() -> None:
    # c = 100, F = 500, cap = 1e9, a = 1e-6: t_1 = 600 / 1e-6 = 6e8 <= 1e9;
    # step 2 costs 700 for > 1e9 tokens worth > 1000: wins entirely, and so on.
    result = solve(1e-6, 0, 100, 500, 1e9, 1)
    assert same(result.intervals, ((6e8, None),))
    assert result.first == result.sustained


def test_min_instances_start_the_staircase_higher() -> None:
    # m = 3: the first step holds 3 instances (3000 $) up to 4.5e9 tokens; wins from 3e9.
    result = solve(1e-6, 0, 1000, 0, 1.5e9, 3)
    assert same(result.intervals, ((3e9, None),))


def test_egress_reduces_the_margin_per_token() -> None:
    # a - e = 1e-6 - 0.5e-6 = 0.5e-6; t_1 = 100 / 0.5e-6 = 2e8
    result = solve(1e-6, 0.5e-6, 100, 0, 1e9, 1)
    assert result.first == pytest.approx(2e8)


def test_free_start_breaks_even_at_zero() -> None:
    # no instance and no fixed cost at V = 0: both cost 0 there
    result = solve(1e-6, 0, 100, 0, 1e9, 0)
    assert result.intervals[0] == (0.0, 0.0)
    assert same(result.intervals[1:], ((1e8, None),))


def test_long_alternation_is_truncated_with_a_count() -> None:
    # g = a·cap - c = 1001 - 1000 = 1 per step: 1001 + ... steps before it stays ahead
    result = solve(1.001e-6, 0, 1000, 0, 1e9, 1, limit=10)
    assert len(result.intervals) == 10
    assert result.intervals[-1][1] is None
    # k1 = 1, ks = ceil(1001 / 1) = 1001: partial steps 1..999 (999 of them), 9 shown
    assert result.omitted == 999 - 9


def test_reserved_scenario_break_even() -> None:
    # Haiku 0.00055 $/1K vs reserved 3.402 $/h at utilization 0.9, no FTE, no egress:
    # c = 3.402 x 730 = 2,483.46; cap = 2000 x 0.9 x 3600 x 730 = 4,730,400,000;
    # t_1 = 2,483.46 / 5.5e-7 = 4,515,381,818.18 <= cap: first break-even.
    raw = {
        "self_hosted": {"pricing": "reserved", "utilization": 0.9},
        "fixed_monthly": {"fte": 0},
        "variable": {"egress_usd_per_gb": 0},
    }
    model = CostModel.of(resolve_scenario(parse_scenario(raw)).scenario)
    result = break_even(model)
    assert result.first == pytest.approx(2483.46 / 5.5e-7)
    # g = 5.5e-7 x 4.7304e9 - 2483.46 = 118.26; fully winning from step ceil(2601.72/118.26)
    assert result.sustained is not None and result.sustained > 9e10


def test_spot_scenario_break_even() -> None:
    # spot 5.67 x 0.35 x 730 / 729.5 (no fallback) per hour, x 730 h per instance-month
    raw = {
        "self_hosted": {"pricing": "spot", "spot": {"on_demand_fallback_share": 0}},
        "fixed_monthly": {"fte": 0},
        "variable": {"egress_usd_per_gb": 0},
    }
    model = CostModel.of(resolve_scenario(parse_scenario(raw)).scenario)
    c = 5.67 * 0.35 * 730 / 729.5 * 730
    assert break_even(model).first == pytest.approx(c / 5.5e-7)


# ---------------------------------------------------------------- properties


def cost(v: Fraction, a: Fraction, e: Fraction, c: Fraction, f: Fraction, cap: Fraction, m: int):
    n = max(m, math.ceil(v / cap))
    return n * c + f + e * v, a * v


params = st.tuples(
    st.floats(1e-8, 1e-4),  # a
    st.floats(0, 5e-6),  # e
    st.floats(1.0, 1e5),  # c
    st.floats(0, 1e5),  # F
    st.floats(1e6, 1e10),  # cap
    st.integers(0, 5),  # m
)


@settings(max_examples=300, deadline=None)
@given(params)
def test_intervals_are_sorted_disjoint_and_costs_meet_at_each_break_even(p) -> None:
    a, e, c, f, cap, m = p
    result = solve(a, e, c, f, cap, m, limit=50)
    previous_hi = -1.0
    for lo, hi in result.intervals:
        assert lo > previous_hi
        assert hi is None or lo <= hi
        previous_hi = math.inf if hi is None else hi
    fr = [Fraction(x) for x in (a, e, c, f, cap)]
    for lo, hi in result.intervals:
        if lo == 0.0:
            continue
        self_cost, api_cost = cost(Fraction(lo), *fr, m)
        assert abs(self_cost - api_cost) <= 1e-9 * max(api_cost, 1)
        assert self_cost <= api_cost * (1 + 1e-12) + Fraction(1, 10**9)
        # just inside the interval self-hosted wins; just before its start it loses
        inside = Fraction(lo) if hi is None else (Fraction(lo) + Fraction(hi)) / 2
        s_in, a_in = cost(inside, *fr, m)
        assert s_in <= a_in * (1 + Fraction(1, 10**9))
        before = Fraction(lo) * (1 - Fraction(1, 10**6))
        if before > 0 and (not result.intervals or lo == result.first):
            s_b, a_b = cost(before, *fr, m)
            assert s_b > a_b


@settings(max_examples=200, deadline=None)
@given(params, st.floats(1.0, 3.0))
def test_a_higher_api_price_never_moves_the_first_break_even_up(p, factor) -> None:
    a, e, c, f, cap, m = p
    cheap = solve(a, e, c, f, cap, m, limit=5).first
    dear = solve(a * factor, e, c, f, cap, m, limit=5).first
    if cheap is not None:
        assert dear is not None and dear <= cheap * (1 + 1e-12)


@settings(max_examples=200, deadline=None)
@given(params, st.floats(0, 1), st.floats(0, 1))
def test_costs_are_monotone_in_volume_within_a_step(p, x, y) -> None:
    a, e, c, f, cap, m = p
    k = max(m, 1) + 1
    lo, hi = sorted((x, y))
    fr = [Fraction(v) for v in (a, e, c, f, cap)]
    step_lo = (k - 1) * fr[4]
    v1 = step_lo + fr[4] * Fraction(max(lo, 1e-9))
    v2 = step_lo + fr[4] * Fraction(max(hi, 1e-9))
    s1, a1 = cost(v1, *fr, m)
    s2, a2 = cost(v2, *fr, m)
    assert s1 <= s2 and a1 <= a2


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 20),
    st.integers(0, 50),
    st.integers(1, 20),
    st.integers(1, 30),
    st.integers(0, 3),
)
def test_agrees_with_a_brute_force_scan(a_num, f, c, cap, m) -> None:
    # small integers: a = a_num / 10 per token, scan every volume 0..400 in steps of 1/4
    a = Fraction(a_num, 10)
    result = solve(a, 0, c, f, cap, m, limit=1000)
    for i in range(0, 1601):
        v = Fraction(i, 4)
        n = max(m, math.ceil(v / cap))
        wins = n * c + f <= a * v
        inside = any(lo <= v and (hi is None or v <= hi) for lo, hi in result.intervals)
        assert wins == inside, (v, result.intervals)
