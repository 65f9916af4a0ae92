"""The cost model's formulas, each checked against arithmetic written out by hand."""

from __future__ import annotations

import pytest

from fulcrum.econ.cost import (
    CostModel,
    batch_factor,
    blended_price_per_1k,
    effective_hourly,
    egress_per_token,
    exact_capacity,
    fixed_monthly,
    instance_capacity,
    instances_needed,
    spot_hourly,
)
from fulcrum.econ.scenario import SpotTerms, parse_scenario, resolve_scenario


def model(raw: dict[str, object]) -> CostModel:
    return CostModel.of(resolve_scenario(parse_scenario(raw)).scenario)


def test_blended_price_weights_input_and_output() -> None:
    # 0.7 x 0.00025 + 0.3 x 0.00125 = 0.000175 + 0.000375
    assert blended_price_per_1k(0.7, 0.00025, 0.00125) == pytest.approx(0.00055)


def test_batch_discount_applies_to_the_batch_share_only() -> None:
    # 40 % of traffic at 50 % off: pay 1 - 0.4 x 0.5 = 0.8 of list price
    assert batch_factor(0.4, 0.5) == pytest.approx(0.8)
    m = model({"api": {"batch_share": 0.4, "batch_discount": 0.5}})
    # 1e9 tokens x 0.00055 / 1000 x 0.8 = 440
    assert m.api(1e9) == pytest.approx(440.0)


def test_instance_capacity() -> None:
    # 2000 tokens/s x 0.6 x 3600 s/h x 730 h = 3,153,600,000 tokens per instance-month
    assert instance_capacity(2000, 0.6, 730) == pytest.approx(3_153_600_000)
    assert exact_capacity(2000, 0.5, 730) == 2000 * 3600 * 730 // 2


def test_instances_are_whole_and_exact_at_the_boundary() -> None:
    cap = exact_capacity(2000, 0.5, 730)  # 2,628,000,000 exactly
    assert instances_needed(2 * 2_628_000_000, cap, 1) == 2  # exactly two instances' worth
    assert instances_needed(2 * 2_628_000_000 + 1, cap, 1) == 3
    assert instances_needed(0, cap, 1) == 1  # min_instances
    assert instances_needed(0, cap, 0) == 0
    assert instances_needed(1, cap, 4) == 4


def test_on_demand_and_reserved_hourly() -> None:
    spot = SpotTerms()
    assert effective_hourly("on_demand", 5.67, 0.4, spot, 730) == 5.67
    # 5.67 x (1 - 0.4) = 3.402
    assert effective_hourly("reserved", 5.67, 0.4, spot, 730) == pytest.approx(3.402)


def test_spot_hourly_charges_interruptions_and_blends_fallback() -> None:
    spot = SpotTerms(
        discount=0.65, interruptions_per_month=2, recovery_hours=0.25, on_demand_fallback_share=0.2
    )
    # spot per productive hour: 5.67 x 0.35 x 730 / (730 - 2 x 0.25) = 1.9845 x 730 / 729.5
    per_productive = 5.67 * 0.35 * 730 / 729.5
    assert spot_hourly(5.67, spot, 730) == pytest.approx(per_productive)
    # blended: 0.8 x spot + 0.2 x 5.67
    expected = 0.8 * per_productive + 0.2 * 5.67
    assert effective_hourly("spot", 5.67, 0.4, spot, 730) == pytest.approx(expected)
    assert expected == pytest.approx(2.72269, abs=1e-5)


def test_fixed_and_egress() -> None:
    # 0.5 FTE x 187,617 / 12 + 300 + 50 = 7,817.375 + 350
    assert fixed_monthly(0.5, 187617, 300, 50) == pytest.approx(8167.375)
    # 0.09 USD/GB x 4 bytes/token / 1e9 bytes/GB
    assert egress_per_token(0.09, 4) == pytest.approx(3.6e-10)


def test_self_hosted_total_and_row() -> None:
    m = model({})  # every default: on-demand 5.67 $/h, 2000 tok/s at 0.6, 730 h, 0.5 FTE
    volume = 5e9  # 5e9 / 3.1536e9 = 1.59 -> 2 instances
    compute = 2 * 5.67 * 730  # 8,278.20
    fixed = 0.5 * 187617 / 12  # 7,817.375
    egress = 5e9 * 4 / 1e9 * 0.09  # 20 GB x 0.09 = 1.80
    row = m.row(volume)
    assert row["self_instances"] == 2
    assert row["self_compute_monthly"] == pytest.approx(compute)
    assert row["self_fixed_monthly"] == pytest.approx(fixed)
    assert row["self_variable_monthly"] == pytest.approx(egress)
    assert row["self_monthly"] == pytest.approx(compute + fixed + egress)
    assert row["api_monthly"] == pytest.approx(5e9 / 1000 * 0.00055)  # 2,750
    assert row["api_per_1k"] == pytest.approx(0.00055)
    assert row["self_per_1k"] == pytest.approx((compute + fixed + egress) / 5e6)
    assert row["cheaper"] == "api"


def test_parity_utilization() -> None:
    # reserved 3.402 $/h; API 0.00055 $/1K = 5.5e-7 $/token:
    # u* = 3.402 / (2000 x 3600 x 5.5e-7) = 3.402 / 3.96 = 0.85909...
    m = model({"self_hosted": {"pricing": "reserved"}})
    assert m.parity_utilization() == pytest.approx(3.402 / 3.96)
    # on-demand: 5.67 / 3.96 = 1.4318 > 1: compute alone never reaches the API's price
    assert model({}).parity_utilization() == pytest.approx(5.67 / 3.96)
