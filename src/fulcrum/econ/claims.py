"""Check stated figures against the arithmetic of their own inputs.

A claims file lists figures someone stated (a capacity, a monthly cost, a break-even range, a
table cell). Each claim names a quantity, optionally a volume and scenario overrides
(``where``: e.g. reserved pricing for the "Reserved 1y" column), and the stated value (or
range). The check recomputes the quantity from the scenario and shows the arithmetic, so a
reader sees not only *that* a figure is off but *why*.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fulcrum.config import format_validation_error
from fulcrum.econ.breakeven import BreakEven, break_even
from fulcrum.econ.cost import CostModel
from fulcrum.econ.scenario import Resolved, merge, parse_scenario, resolve_scenario
from fulcrum.errors import ConfigError

Quantity = Literal[
    "api_per_1k",
    "api_monthly",
    "capacity_tokens_per_instance",
    "effective_hourly",
    "instance_monthly",
    "compute_per_1k_at_capacity",
    "self_instances",
    "self_compute_monthly",
    "self_monthly",
    "self_per_1k",
    "parity_utilization",
    "break_even_first",
    "break_even_sustained",
]
NEEDS_VOLUME = {"api_monthly", "self_instances", "self_compute_monthly", "self_monthly"}
NEEDS_VOLUME |= {"self_per_1k"}
BREAK_EVEN = {"break_even_first", "break_even_sustained"}


class Claim(BaseModel):
    """One stated figure and how to recompute it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    text: str = ""
    quantity: Quantity
    volume_tokens: float | None = Field(default=None, ge=0)
    where: dict[str, Any] = Field(default_factory=dict)
    stated: float | Literal["never"] | None = None
    stated_range: tuple[float | None, float | None] | None = None
    tolerance: float = Field(default=0.01, ge=0)
    note: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Claim:
        if (self.stated is None) == (self.stated_range is None):
            raise ValueError("give exactly one of stated and stated_range")
        if self.quantity in NEEDS_VOLUME and self.volume_tokens is None:
            raise ValueError(f"{self.quantity} needs volume_tokens")
        if self.stated == "never" and self.quantity not in BREAK_EVEN:
            raise ValueError("'never' is only a break-even figure")
        return self


class ClaimsFile(BaseModel):
    """A list of claims and where they come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = ""
    claims: list[Claim]


def parse_claims(raw: Any, where: str) -> ClaimsFile:
    """Validate a parsed claims document."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: <root>: the claims file must be a mapping")
    try:
        return ClaimsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {format_validation_error(exc)}") from None


def num(value: float | None) -> str:
    """A figure as a reader writes it: thousands separators, no spurious digits."""
    if value is None:
        return "never"
    if math.isinf(value):
        return "∞"
    if abs(value) < 100:
        return f"{value:.6g}"
    text = f"{value:,.2f}"
    return text[:-3] if text.endswith(".00") else text


@dataclass(frozen=True)
class Figure:
    """A recomputed value and the arithmetic that produced it."""

    value: float | None
    arithmetic: str


def _explain(quantity: str, s: Resolved, model: CostModel, volume: float | None) -> Figure:
    sc = s.scenario
    h = sc.self_hosted
    hours = num(sc.hours_per_month)
    blended = (
        f"{sc.input_share:g} x {num(sc.api.price_in_per_1k)} + {1 - sc.input_share:g} x "
        f"{num(sc.api.price_out_per_1k)}"
    )
    factor = 1 - sc.api.batch_share * sc.api.batch_discount
    per_1k = model.api_per_token * 1000
    batch = f" x (1 - {sc.api.batch_share:g} x {sc.api.batch_discount:g})" if factor != 1 else ""
    capacity = float(model.capacity)
    cap_text = (
        f"{num(h.throughput_tps)} tokens/s x {h.average_utilization:g} x 3600 s/h x {hours} h"
    )
    hourly = _hourly_text(s)
    v = volume or 0.0

    def instances_text() -> str:
        return f"max({h.min_instances}, ceil({num(v)} / {num(capacity)})) = {model.instances(v)}"

    def be(which: str, value: BreakEven) -> Figure:
        listed = ", ".join(
            f"[{num(lo)}, {num(hi) if hi is not None else '∞'}]" for lo, hi in value.intervals[:4]
        )
        more = " …" if len(value.intervals) > 4 else ""
        head = (
            f"API {num(per_1k)}/1K vs self-hosted n·{num(model.instance_monthly)} + "
            f"{num(model.fixed)} fixed + {num(model.egress_per_token * 1000)}/1K egress, "
            f"capacity {num(capacity)} per instance: "
        )
        if value.never:
            return Figure(
                None,
                head + "self-hosted never costs ≤ API (each instance costs "
                f"{num(model.instance_monthly)}, the API charges {num(per_1k * capacity / 1000)} "
                "for the tokens it can serve)",
            )
        result = value.first if which == "first" else value.sustained
        return Figure(result, head + f"self-hosted ≤ API on {listed}{more}")

    table: dict[str, Callable[[], Figure]] = {
        "api_per_1k": lambda: Figure(per_1k, f"{blended}{batch} = {num(per_1k)} USD/1K"),
        "api_monthly": lambda: Figure(
            model.api(v), f"{num(per_1k)} USD/1K x {num(v)} / 1000 = {num(model.api(v))}"
        ),
        "capacity_tokens_per_instance": lambda: Figure(capacity, f"{cap_text} = {num(capacity)}"),
        "effective_hourly": lambda: Figure(model.hourly, f"{hourly} = {num(model.hourly)}"),
        "instance_monthly": lambda: Figure(
            model.instance_monthly, f"{hourly} x {hours} h = {num(model.instance_monthly)}"
        ),
        "compute_per_1k_at_capacity": lambda: Figure(
            model.instance_monthly / capacity * 1000,
            f"({hourly} x {hours} h = {num(model.instance_monthly)}) / ({cap_text} = "
            f"{num(capacity)}) x 1000 = "
            f"{num(model.instance_monthly / capacity * 1000)} USD/1K",
        ),
        "self_instances": lambda: Figure(model.instances(v), instances_text()),
        "self_compute_monthly": lambda: Figure(
            model.self_compute(v),
            f"{instances_text()} x {num(model.instance_monthly)} = {num(model.self_compute(v))}",
        ),
        "self_monthly": lambda: Figure(
            model.self_total(v),
            f"{num(model.self_compute(v))} compute ({instances_text()}) + {num(model.fixed)} "
            f"fixed + {num(model.self_variable(v))} egress = {num(model.self_total(v))}",
        ),
        "self_per_1k": lambda: Figure(
            model.self_total(v) / v * 1000 if v else None,
            f"{num(model.self_total(v))} / {num(v)} x 1000 = "
            f"{num(model.self_total(v) / v * 1000 if v else None)} USD/1K",
        ),
        "parity_utilization": lambda: Figure(
            model.parity_utilization(),
            f"{num(model.hourly)} / ({num(h.throughput_tps)} x 3600 x {num(per_1k)} / 1000) = "
            f"{model.parity_utilization():.4f}",
        ),
        "break_even_first": lambda: be("first", break_even(model)),
        "break_even_sustained": lambda: be("sustained", break_even(model)),
    }
    return table[quantity]()


def _hourly_text(s: Resolved) -> str:
    sc = s.scenario
    h = sc.self_hosted
    if h.pricing == "reserved":
        return f"{num(h.hourly_price)} x (1 - {h.reserved_discount:g})"
    if h.pricing == "spot":
        spot = h.spot
        hours = num(sc.hours_per_month)
        lost = f"{spot.interruptions_per_month:g} x {spot.recovery_hours:g}"
        share = spot.on_demand_fallback_share
        return (
            f"({1 - share:g} x {num(h.hourly_price)} x (1 - {spot.discount:g}) x {hours} / "
            f"({hours} - {lost}) + {share:g} x {num(h.hourly_price)})"
        )
    return f"{num(h.hourly_price)}"


def _follows(claim: Claim, value: float | None) -> bool:
    if claim.stated == "never":
        return value is None
    if claim.stated_range is not None:
        low, high = claim.stated_range
        if value is None:  # never: above every finite bound
            return high is None
        tol = claim.tolerance
        return (low is None or value >= low * (1 - tol)) and (
            high is None or value <= high * (1 + tol)
        )
    assert isinstance(claim.stated, float | int)
    if value is None:
        return False
    stated = float(claim.stated)
    return abs(value - stated) <= claim.tolerance * abs(stated) + 1e-12


def check(raw_scenario: Any, claims: ClaimsFile, where: str = "scenario") -> list[dict[str, Any]]:
    """Recompute every claim from the scenario (with the claim's overrides)."""
    results = []
    for index, claim in enumerate(claims.claims):
        raw = merge(raw_scenario or {}, claim.where) if claim.where else raw_scenario
        at = f"{where} with claims.{index}.where" if claim.where else where
        resolved = resolve_scenario(parse_scenario(raw, at))
        model = CostModel.of(resolved.scenario)
        figure = _explain(claim.quantity, resolved, model, claim.volume_tokens)
        follows = _follows(claim, figure.value)
        stated: Any = claim.stated if claim.stated is not None else list(claim.stated_range or ())
        deviation = None
        if isinstance(claim.stated, float | int) and figure.value is not None and claim.stated:
            deviation = figure.value / float(claim.stated) - 1
        results.append(
            {
                "id": claim.id,
                "text": claim.text,
                "quantity": claim.quantity,
                "volume_tokens": claim.volume_tokens,
                "where": claim.where,
                "stated": stated,
                "tolerance": claim.tolerance,
                "computed": figure.value,
                "deviation": deviation,
                "follows": follows,
                "arithmetic": figure.arithmetic,
                "note": claim.note,
            }
        )
    return results
