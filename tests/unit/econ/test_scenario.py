"""Scenario validation: one line naming the key; catalogue references resolved with provenance."""

from __future__ import annotations

import pytest

from fulcrum.econ.prices import default_catalog
from fulcrum.econ.scenario import assumptions, parse_scenario, resolve_scenario
from fulcrum.errors import UserError


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"api": {"price_in_per_1k": -1}}, "api.price_in_per_1k: Input should be greater"),
        ({"self_hosted": {"utilization": 1.2}}, "self_hosted.utilization: "),
        ({"self_hosted": {"throughput": 5}}, "self_hosted.throughput: unknown key"),
        ({"hours_per_monht": 720}, "hours_per_monht: unknown key"),
        ({"self_hosted": {"pricing": "cheap"}}, "self_hosted.pricing: Input should be"),
        ({"fleet": {"cold_start_minutes": [15, 8]}}, "fleet.cold_start_minutes: must be"),
    ],
)
def test_bad_values_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(UserError) as info:
        resolve_scenario(parse_scenario(raw, "s.yaml"))
    assert str(info.value).startswith("s.yaml: " + message), str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_catalogue_entry() -> None:
    with pytest.raises(UserError, match=r"^self_hosted.catalog: unknown catalogue entry 'g9'"):
        resolve_scenario(parse_scenario({"self_hosted": {"catalog": "g9"}}))
    with pytest.raises(UserError, match=r"^api.catalog: .* no price for region 'mars-1'"):
        resolve_scenario(
            parse_scenario({"api": {"catalog": "anthropic.claude-3-haiku", "region": "mars-1"}})
        )


def test_catalogue_fills_prices_and_explicit_figures_win() -> None:
    raw = {
        "api": {"catalog": "anthropic.claude-3-5-haiku", "price_out_per_1k": 0.005},
        "self_hosted": {"catalog": "g5.12xlarge", "region": "us-east-1"},
    }
    resolved = resolve_scenario(parse_scenario(raw))
    s = resolved.scenario
    assert s.api.price_in_per_1k == 0.0008
    assert s.api.price_out_per_1k == 0.005
    assert s.self_hosted.hourly_price == 5.672
    # reserved discount from the catalogue: 1 - 3.573 / 5.672
    assert s.self_hosted.reserved_discount == pytest.approx(1 - 3.573 / 5.672)
    assert "overrides" in resolved.sources["api.price_out_per_1k"]
    assert "as of" in resolved.sources["self_hosted.hourly_price"]


def test_missing_catalogue_price_must_be_stated() -> None:
    raw = {"self_hosted": {"catalog": "p5.48xlarge", "region": "sa-east-1"}}
    with pytest.raises(UserError, match=r"state self_hosted\.hourly_price"):
        resolve_scenario(parse_scenario(raw))
    raw["self_hosted"]["hourly_price"] = 90.0  # type: ignore[index]
    assert resolve_scenario(parse_scenario(raw)).scenario.self_hosted.hourly_price == 90.0


def test_spot_interruptions_cannot_exceed_the_month() -> None:
    # 3000 interruptions x 0.25 h = 750 h >= 730 h
    raw = {"self_hosted": {"pricing": "spot", "spot": {"interruptions_per_month": 3000}}}
    with pytest.raises(UserError, match=r"^self_hosted\.spot: "):
        resolve_scenario(parse_scenario(raw))


def test_every_output_echoes_every_assumption() -> None:
    echoed = assumptions(resolve_scenario(parse_scenario({})))
    assert echoed["hours_per_month"] == 730
    assert echoed["self_hosted"]["spot"]["recovery_hours"] == 0.25
    assert echoed["fixed_monthly"]["fte_annual_loaded_usd"] == 187617
    assert echoed["derived"]["capacity_tokens_per_instance"] == pytest.approx(3_153_600_000)
    assert echoed["sources"]["self_hosted.hourly_price"] == "default"


def test_the_shipped_catalogue_has_dates_and_sources() -> None:
    catalog = default_catalog()
    for name in ("g5.12xlarge", "g6e.12xlarge", "p4d.24xlarge", "p5.48xlarge"):
        entry = catalog.ec2[name]
        assert {"us-east-1", "sa-east-1"} <= set(entry.regions)
        assert entry.as_of and entry.source.startswith("https://")
    assert catalog.ec2["g5.12xlarge"].regions["sa-east-1"].on_demand == 9.641
    assert catalog.ec2["p5.48xlarge"].regions["us-east-1"].on_demand == 55.04
    haiku = catalog.bedrock["anthropic.claude-3-haiku"].regions["us-east-1"]
    assert (haiku.price_in_per_1k, haiku.price_out_per_1k) == (0.00025, 0.00125)
