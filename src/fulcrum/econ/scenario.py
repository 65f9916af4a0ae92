"""The scenario: every economic assumption, typed, with a documented default and unit.

A scenario file is YAML. It is validated like the gateway configuration (unknown keys are
errors; a mistake is one line naming the key path), then *resolved*: catalogue references
are replaced by the figures they stand for (explicit figures win), and a utilization derived
from the load shape is computed. Every output echoes the resolved scenario, the source of
each price, and any warning — e.g. a typed utilization the load shape cannot reach.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fulcrum.config import format_validation_error
from fulcrum.econ import loadshape
from fulcrum.econ.prices import Catalog, default_catalog
from fulcrum.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiOption(_Strict):
    """The managed option: per-token prices (USD per 1K tokens)."""

    name: str = "bedrock/anthropic.claude-3-haiku"
    catalog: str | None = None
    region: str = "us-east-1"
    price_in_per_1k: float = Field(default=0.00025, ge=0)
    price_out_per_1k: float = Field(default=0.00125, ge=0)
    batch_discount: float = Field(default=0.0, ge=0, le=1)
    batch_share: float = Field(default=0.0, ge=0, le=1)


class SpotTerms(_Strict):
    """Spot pricing: discount, interruptions (each costs paid but unproductive hours)."""

    discount: float = Field(default=0.65, ge=0, lt=1)
    interruptions_per_month: float = Field(default=2.0, ge=0)
    recovery_hours: float = Field(default=0.25, ge=0)
    on_demand_fallback_share: float = Field(default=0.2, ge=0, le=1)


class SelfHosted(_Strict):
    """The self-hosted option: GPU instances running vLLM."""

    name: str = "vllm/llama-3-70b-awq on g5.12xlarge"
    catalog: str | None = None
    region: str = "us-east-1"
    hourly_price: float = Field(default=5.67, gt=0)
    pricing: Literal["on_demand", "reserved", "spot"] = "on_demand"
    reserved_discount: float = Field(default=0.40, ge=0, lt=1)
    spot: SpotTerms = SpotTerms()
    throughput_tps: float = Field(default=2000.0, gt=0)
    utilization: float | Literal["load_shape"] = 0.6
    min_instances: int = Field(default=1, ge=0)

    @field_validator("utilization")
    @classmethod
    def _in_range(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and not 0 < value <= 1:
            raise ValueError("must be in (0, 1] (a share of the instance's throughput)")
        return value

    @property
    def average_utilization(self) -> float:
        """The numeric utilization (a resolved scenario always has one)."""
        if isinstance(self.utilization, str):
            raise RuntimeError("utilization is not resolved; use resolve_scenario()")
        return float(self.utilization)


class LoadShape(_Strict):
    """A two-level daily demand: peak hours and valley hours."""

    peak_to_valley: float = Field(default=8.0, ge=1)
    peak_fraction: float = Field(default=0.5, gt=0, le=1)
    max_utilization: float = Field(default=0.85, gt=0, le=1)
    peaks_per_day: int = Field(default=1, ge=1, le=12)
    peak_start_hour: float = Field(default=9.0, ge=0, lt=24)
    autoscaling: bool = False


class Fleet(_Strict):
    """The autoscaler of the simulation (and the lead time of the load-shape formula)."""

    cold_start_minutes: tuple[float, float] = (8.0, 15.0)
    target_utilization: float = Field(default=0.7, gt=0, le=1)
    min_warm_nodes: int = Field(default=1, ge=0)
    scale_down_delay_minutes: float = Field(default=30.0, ge=0)
    max_nodes: int | None = Field(default=None, ge=1)
    seed: int = 0

    @field_validator("cold_start_minutes", mode="before")
    @classmethod
    def _range(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return (value, value)
        return value

    @field_validator("cold_start_minutes")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if low < 0 or high < low:
            raise ValueError("must be minutes ≥ 0, a number or [min, max] with min ≤ max")
        return value


class FixedMonthly(_Strict):
    """Costs of the self-hosted option that do not depend on volume (USD per month)."""

    fte: float = Field(default=0.5, ge=0)
    fte_annual_loaded_usd: float = Field(default=187617.0, ge=0)
    observability: float = Field(default=0.0, ge=0)
    other: float = Field(default=0.0, ge=0)


class Variable(_Strict):
    """Costs of the self-hosted option proportional to volume."""

    egress_usd_per_gb: float = Field(default=0.09, ge=0)
    bytes_per_token: float = Field(default=4.0, ge=0)


class TriggerSettings(_Strict):
    """Thresholds of the decision record's three migration triggers."""

    batch_tokens_per_month: float = Field(default=2e9, ge=0)
    batch_block_days: int = Field(default=7, ge=1)
    staging_days: int = Field(default=90, ge=0)
    cost_margin: float = Field(default=0.30, ge=0)
    horizon_months: float = Field(default=3.0, ge=0)
    workload: Literal["batch", "all"] = "batch"


class Scenario(_Strict):
    """Every assumption of one comparison. Defaults are documented in docs/economics.md."""

    name: str = "scenario"
    hours_per_month: float = Field(default=730.0, gt=0, le=744)
    input_share: float = Field(default=0.7, ge=0, le=1)
    volume_tokens: float = Field(default=5e9, ge=0)
    api: ApiOption = ApiOption()
    self_hosted: SelfHosted = SelfHosted()
    load_shape: LoadShape | None = None
    fleet: Fleet = Fleet()
    fixed_monthly: FixedMonthly = FixedMonthly()
    variable: Variable = Variable()
    triggers: TriggerSettings = TriggerSettings()


class Resolved(BaseModel):
    """A scenario after catalogue and load-shape resolution, with provenance and warnings."""

    model_config = ConfigDict(frozen=True)

    scenario: Scenario
    sources: dict[str, str]
    warnings: tuple[str, ...]
    load_shape_utilization: dict[str, float] | None = None


def parse_scenario(raw: Any, where: str = "scenario") -> Scenario:
    """Validate a parsed YAML document into a Scenario (not yet resolved)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: <root>: the scenario must be a mapping")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {format_validation_error(exc)}") from None


def resolve_scenario(scenario: Scenario, catalog: Catalog | None = None) -> Resolved:
    """Fill catalogue figures (explicit figures win), derive utilization, collect warnings."""
    catalog = catalog or default_catalog()
    sources: dict[str, str] = {}
    warnings: list[str] = []
    api = scenario.api
    if api.catalog is not None:
        price, entry = catalog.model(api.catalog, api.region, "api.catalog")
        update: dict[str, Any] = {}
        for key in ("price_in_per_1k", "price_out_per_1k"):
            if key in api.model_fields_set:
                sources[f"api.{key}"] = "scenario (overrides the catalogue)"
            else:
                update[key] = getattr(price, key)
                sources[f"api.{key}"] = _cite(api.catalog, api.region, entry.as_of, entry.source)
        if not entry.verified:
            warnings.append(f"api.catalog: {api.catalog!r} is marked unverified in the catalogue")
        api = api.model_copy(update=update)
    else:
        for key in ("price_in_per_1k", "price_out_per_1k"):
            sources[f"api.{key}"] = _given(api, key)

    hosted = scenario.self_hosted
    if hosted.catalog is not None:
        hourly, inst = catalog.instance(hosted.catalog, hosted.region, "self_hosted.catalog")
        update = {}
        cite = _cite(hosted.catalog, hosted.region, inst.as_of, inst.source)
        if "hourly_price" in hosted.model_fields_set:
            sources["self_hosted.hourly_price"] = "scenario (overrides the catalogue)"
        elif hourly.on_demand is None:
            raise ConfigError(
                f"self_hosted.catalog: {hosted.catalog!r} has no on-demand price for "
                f"{hosted.region!r}; state self_hosted.hourly_price"
            )
        else:
            update["hourly_price"] = hourly.on_demand
            sources["self_hosted.hourly_price"] = cite
        if "reserved_discount" in hosted.model_fields_set:
            sources["self_hosted.reserved_discount"] = "scenario (overrides the catalogue)"
        elif hourly.reserved_1y is not None and hourly.on_demand is not None:
            update["reserved_discount"] = 1 - hourly.reserved_1y / hourly.on_demand
            sources["self_hosted.reserved_discount"] = (
                f"1 - reserved_1y / on_demand = 1 - {hourly.reserved_1y} / {hourly.on_demand}"
                f" ({cite})"
            )
        else:
            sources["self_hosted.reserved_discount"] = _given(hosted, "reserved_discount")
        if not inst.verified:
            warnings.append(
                f"self_hosted.catalog: {hosted.catalog!r} is marked unverified in the catalogue"
            )
        hosted = hosted.model_copy(update=update)
    else:
        sources["self_hosted.hourly_price"] = _given(hosted, "hourly_price")
        sources["self_hosted.reserved_discount"] = _given(hosted, "reserved_discount")

    spot = hosted.spot
    lost = spot.interruptions_per_month * spot.recovery_hours
    if hosted.pricing == "spot" and lost >= scenario.hours_per_month:
        raise ConfigError(
            "self_hosted.spot: interruptions_per_month x recovery_hours must stay below "
            f"hours_per_month ({lost:g} ≥ {scenario.hours_per_month:g})"
        )

    shape = scenario.load_shape
    shape_util: dict[str, float] | None = None
    if shape is not None:
        fleet = scenario.fleet
        lead_hours = fleet.cold_start_minutes[1] / 60
        fixed = loadshape.fixed_fleet_utilization(
            shape.peak_to_valley, shape.peak_fraction, shape.max_utilization
        )
        auto = loadshape.autoscaled(
            shape.peak_to_valley,
            shape.peak_fraction,
            shape.max_utilization,
            shape.peaks_per_day,
            lead_hours + fleet.scale_down_delay_minutes / 60,
        )
        shape_util = {
            "fixed_fleet": fixed,
            "autoscaled": auto.average_utilization,
            "autoscaled_fleet_fraction": auto.fleet_fraction,
            "autoscaled_extra_hours_per_peak": auto.extra_hours_per_peak,
        }
        reachable = auto.average_utilization if shape.autoscaling else fixed
        how = "an autoscaled fleet" if shape.autoscaling else "a fleet sized for the peak"
        if hosted.utilization == "load_shape":
            hosted = hosted.model_copy(update={"utilization": reachable})
            sources["self_hosted.utilization"] = f"derived from load_shape for {how}"
        else:
            sources["self_hosted.utilization"] = "scenario"
            typed = hosted.average_utilization
            if typed > reachable + 1e-12:
                warnings.append(
                    f"self_hosted.utilization: {typed:g} is more than the load shape allows "
                    f"(fleet sized for the peak {fixed:.4f}, autoscaled fleet "
                    f"{auto.average_utilization:.4f}; load_shape.autoscaling is "
                    f"{str(shape.autoscaling).lower()}); "
                    "results use the typed value"
                )
    elif hosted.utilization == "load_shape":
        raise ConfigError("self_hosted.utilization: 'load_shape' needs a load_shape section")
    else:
        sources["self_hosted.utilization"] = "scenario"

    resolved = scenario.model_copy(update={"api": api, "self_hosted": hosted})
    return Resolved(
        scenario=resolved,
        sources=sources,
        warnings=tuple(warnings),
        load_shape_utilization=shape_util,
    )


def _cite(name: str, region: str, as_of: str, source: str) -> str:
    return f"catalogue {name} {region}, as of {as_of}, {source}"


def _given(model: BaseModel, key: str) -> str:
    return "scenario" if key in model.model_fields_set else "default"


def read_yaml(path: str | Path, what: str) -> Any:
    """Read a YAML file; a missing file or a syntax error is one line naming the file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {file}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{file}{at}: {problem}") from None


def load_scenario(path: str | Path, catalog: Catalog | None = None) -> Resolved:
    """Read, validate and resolve a scenario file."""
    return resolve_scenario(parse_scenario(read_yaml(path, "scenario"), str(path)), catalog)


def merge(base: Any, override: Any) -> Any:
    """Deep-merge ``override`` into a copy of ``base`` (mappings merge, other values replace)."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for key, value in override.items():
            out[key] = merge(out.get(key), value) if key in out else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def raw_of(scenario: Scenario) -> dict[str, Any]:
    """The scenario as the YAML mapping that would produce it (only keys that were set)."""
    return scenario.model_dump(mode="json", exclude_unset=True)


def assumptions(resolved: Resolved) -> dict[str, Any]:
    """The full set of assumptions an output used: every key, defaults included."""
    from fulcrum.econ.cost import CostModel

    model = CostModel.of(resolved.scenario)
    return {
        **resolved.scenario.model_dump(mode="json"),
        "derived": model.derived(),
        "sources": dict(resolved.sources),
        "load_shape_utilization": resolved.load_shape_utilization,
        "warnings": list(resolved.warnings),
    }
