"""Load shape -> reachable utilization, and the scenario's refusal to hide an impossible one."""

from __future__ import annotations

import pytest

from fulcrum.econ.loadshape import autoscaled, fixed_fleet_utilization
from fulcrum.econ.scenario import parse_scenario, resolve_scenario


def test_fleet_sized_for_the_peak() -> None:
    # 8:1 peak-to-valley, half the hours at peak, 85 % at peak:
    # 0.85 x (0.5 + 0.5 / 8) = 0.85 x 0.5625 = 0.478125
    assert fixed_fleet_utilization(8, 0.5, 0.85) == pytest.approx(0.478125)
    # flat demand: the average is the peak
    assert fixed_fleet_utilization(1, 0.3, 0.85) == pytest.approx(0.85)


def test_autoscaled_fleet_pays_the_cold_start_and_scale_down_delay() -> None:
    # peak fleet held 12 h + 0.75 h (15 min cold start + 30 min delay) = 12.75 h of 24:
    # fleet fraction = 12.75/24 + (11.25/24) / 8 = 0.53125 + 0.05859375 = 0.58984375
    result = autoscaled(8, 0.5, 0.85, 1, 0.75)
    assert result.fleet_fraction == pytest.approx(0.58984375)
    # utilization = 0.478125 / 0.58984375
    assert result.average_utilization == pytest.approx(0.478125 / 0.58984375)


def test_autoscaled_with_no_lead_time_runs_at_peak_utilization() -> None:
    # instant scaling follows demand exactly: always at max_utilization
    assert autoscaled(8, 0.5, 0.85, 1, 0.0).average_utilization == pytest.approx(0.85)
    # lead time covering the whole day is the fixed fleet
    assert autoscaled(8, 0.5, 0.85, 2, 12).average_utilization == pytest.approx(0.478125)


def test_typed_utilization_above_the_shape_is_reported() -> None:
    raw = {"load_shape": {"peak_to_valley": 8}, "self_hosted": {"utilization": 0.6}}
    resolved = resolve_scenario(parse_scenario(raw))
    assert any("self_hosted.utilization: 0.6" in w for w in resolved.warnings)
    assert resolved.scenario.self_hosted.average_utilization == 0.6


def test_utilization_derived_from_the_load_shape() -> None:
    raw = {"load_shape": {"peak_to_valley": 8}, "self_hosted": {"utilization": "load_shape"}}
    resolved = resolve_scenario(parse_scenario(raw))
    assert resolved.scenario.self_hosted.average_utilization == pytest.approx(0.478125)
    assert resolved.warnings == ()
    raw["load_shape"] = {"peak_to_valley": 8, "autoscaling": True}
    auto = resolve_scenario(parse_scenario(raw)).scenario.self_hosted.average_utilization
    # default fleet: 15 min cold start (upper bound) + 30 min delay = 0.75 h extra
    assert auto == pytest.approx(0.478125 / 0.58984375)
