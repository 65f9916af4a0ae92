"""The fleet simulation: conservation of tokens, no spill without cold start, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fulcrum.econ.scenario import LoadShape, parse_scenario, resolve_scenario
from fulcrum.econ.simulate import readiness, simulate, synthetic_demand


def scenario(**overrides: object):
    raw = {"load_shape": {"peak_to_valley": 8}, "volume_tokens": 5e9, **overrides}
    return resolve_scenario(parse_scenario(raw)).scenario


def test_synthetic_demand_has_the_shape_and_the_volume() -> None:
    shape = LoadShape(peak_to_valley=8, peak_fraction=0.5, peak_start_hour=9)
    demand = synthetic_demand(shape, 7.3e9, 730, 2)
    # mean per minute 7.3e9 / (730 x 60) = 166,666.67; peak = mean / 0.5625
    mean = 7.3e9 / (730 * 60)
    assert demand.mean() == pytest.approx(mean)
    assert demand.max() == pytest.approx(mean / 0.5625)
    assert demand.min() == pytest.approx(mean / 0.5625 / 8)
    assert demand[9 * 60] == demand.max() and demand[9 * 60 - 1] == demand.min()
    assert demand[21 * 60 - 1] == demand.max() and demand[21 * 60] == demand.min()


def test_tokens_are_conserved_for_every_strategy() -> None:
    s = scenario(self_hosted={"pricing": "spot"})
    demand = synthetic_demand(s.load_shape, s.volume_tokens, s.hours_per_month, 7)
    result = simulate(s, demand, [0, 1, 3])
    for outcome in result.outcomes:
        assert np.all(outcome.spilled >= -1e-6)
        np.testing.assert_allclose(outcome.gpu_served + outcome.spilled, demand)
        m = outcome.metrics
        assert m["tokens_gpu"] + m["tokens_api"] == pytest.approx(m["tokens_demand"])


def test_no_cold_start_and_unlimited_nodes_spill_nothing() -> None:
    s = scenario(fleet={"cold_start_minutes": 0, "min_warm_nodes": 0, "max_nodes": None})
    demand = synthetic_demand(s.load_shape, s.volume_tokens, s.hours_per_month, 7)
    result = simulate(s, demand, [0])
    hybrid = result.outcomes[-1]
    assert hybrid.metrics["tokens_api"] == 0
    assert hybrid.metrics["share_gpu"] == 1.0


def test_cold_start_spills_at_each_ramp() -> None:
    s = scenario(fleet={"cold_start_minutes": 10, "min_warm_nodes": 0})
    demand = synthetic_demand(s.load_shape, s.volume_tokens, s.hours_per_month, 3)
    hybrid = simulate(s, demand, [0]).outcomes[-1]
    # the valley fleet cannot serve the peak for the 10 minutes after each of 3 ramps
    assert hybrid.metrics["tokens_spilled_cold_start"] > 0
    assert hybrid.metrics["tokens_spilled_cold_start"] == pytest.approx(
        hybrid.metrics["tokens_api"]
    )
    assert np.count_nonzero(hybrid.spilled > 0) == 3 * 10


def test_managed_only_pays_the_api_for_everything() -> None:
    s = scenario()
    demand = synthetic_demand(s.load_shape, s.volume_tokens, s.hours_per_month, 1)
    managed = simulate(s, demand).outcomes[0]
    assert managed.metrics["cost_total"] == pytest.approx(demand.sum() * 0.00055 / 1000)


def test_readiness_follows_cold_start_and_interruptions() -> None:
    provisioned = np.array([1, 2, 2, 2, 2, 2, 1, 1], dtype=np.int64)
    rng = np.random.default_rng(0)
    ready = readiness(provisioned, (3, 3), 0.0, 0.0, rng)
    # node 1 is warm from the start; node 2 launched at t=1 is ready at t=4, removed at t=6
    assert ready.tolist() == [1, 1, 1, 1, 2, 2, 1, 1]
    always = readiness(np.full(1000, 1, dtype=np.int64), (0, 0), 1.0, 5, rng)
    assert always[0] == 1 and always[1:].sum() == 0  # interrupted every minute, never recovers


def test_thirty_days_simulate_well_under_a_second() -> None:
    s = scenario(self_hosted={"pricing": "spot"})
    demand = synthetic_demand(s.load_shape, s.volume_tokens, s.hours_per_month, 30)
    started = time.perf_counter()
    simulate(s, demand, [0, 1, 2])
    assert time.perf_counter() - started < 0.5
