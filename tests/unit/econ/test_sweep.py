"""Sensitivity sweeps: parsing --vary, and the break-even across a range."""

from __future__ import annotations

import pytest

from fulcrum.econ.scenario import parse_scenario, resolve_scenario
from fulcrum.econ.sweep import parse_vary, sweep
from fulcrum.errors import UserError

RAW = {
    "self_hosted": {"hourly_price": 1.0, "utilization": 0.9},
    "fixed_monthly": {"fte": 0},
    "variable": {"egress_usd_per_gb": 0},
}


def test_break_even_moves_with_the_hourly_price() -> None:
    base = resolve_scenario(parse_scenario(RAW))
    row = sweep(RAW, base, parse_vary("hourly_price=1:2:3", base.scenario))
    # one instance (4.73e9 tokens at 90 %) covers the break-even: t = price x 730 / 5.5e-7
    expected = [h * 730 / 5.5e-7 for h in (1.0, 1.5, 2.0)]
    assert [p["first_tokens"] for p in row["points"]] == pytest.approx(expected)
    assert row["path"] == "self_hosted.hourly_price"


def test_relative_ranges_and_dotted_paths() -> None:
    base = resolve_scenario(parse_scenario(RAW)).scenario
    vary = parse_vary("hourly_price=x0.5:x2", base)
    assert (vary.low, vary.high, vary.points) == (0.5, 2.0, 9)
    assert (
        parse_vary("self_hosted.spot.discount=0.5:0.7:3", base).path == "self_hosted.spot.discount"
    )


@pytest.mark.parametrize(
    "spec",
    [
        "utilization",
        "utilization=0.3",
        "utilization=a:b",
        "bogus=1:2",
        "utilization=0.9:0.3",
        "utilization=0.3:0.9:1",
        "name=1:2",
    ],
)
def test_malformed_vary_is_one_line(spec: str) -> None:
    base = resolve_scenario(parse_scenario(RAW)).scenario
    with pytest.raises(UserError, match=r"^--vary "):
        parse_vary(spec, base)


def test_out_of_range_values_name_the_key() -> None:
    base = resolve_scenario(parse_scenario(RAW))
    with pytest.raises(UserError, match=r"self_hosted.utilization: must be in \(0, 1\]"):
        sweep(RAW, base, parse_vary("utilization=0.5:1.5:3", base.scenario))
