"""Sensitivity of the break-even to each assumption (the data behind the tornado chart).

Each ``--vary name=low:high[:points]`` re-solves the break-even with one assumption moved
across its range, every other assumption held at the scenario's value. A value outside the
assumption's valid range is rejected exactly like a bad scenario file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from fulcrum.econ.breakeven import break_even
from fulcrum.econ.cost import CostModel
from fulcrum.econ.scenario import Resolved, Scenario, parse_scenario, resolve_scenario
from fulcrum.errors import UserError

SHORTHANDS = {
    "utilization": "self_hosted.utilization",
    "hourly_price": "self_hosted.hourly_price",
    "throughput_tps": "self_hosted.throughput_tps",
    "reserved_discount": "self_hosted.reserved_discount",
    "min_instances": "self_hosted.min_instances",
    "spot_discount": "self_hosted.spot.discount",
    "price_in_per_1k": "api.price_in_per_1k",
    "price_out_per_1k": "api.price_out_per_1k",
    "batch_discount": "api.batch_discount",
    "batch_share": "api.batch_share",
    "fte": "fixed_monthly.fte",
    "fte_annual_loaded_usd": "fixed_monthly.fte_annual_loaded_usd",
    "observability": "fixed_monthly.observability",
    "egress_usd_per_gb": "variable.egress_usd_per_gb",
    "hours_per_month": "hours_per_month",
    "input_share": "input_share",
}

DEFAULT_VARY = (
    "utilization=0.3:0.95",
    "hourly_price=x0.75:x1.25",
    "throughput_tps=x0.75:x1.25",
    "price_out_per_1k=x0.75:x1.25",
    "price_in_per_1k=x0.75:x1.25",
    "fte=0:1",
    "reserved_discount=0:0.6",
)


@dataclass(frozen=True)
class Vary:
    """One assumption and the range it is swept over."""

    name: str
    path: str
    low: float
    high: float
    points: int


def _get(scenario: BaseModel, path: str) -> Any:
    value: Any = scenario
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _numeric_path(path: str) -> bool:
    value: Any = Scenario()
    model_type: Any = Scenario
    for part in path.split("."):
        fields = getattr(model_type, "model_fields", None)
        if fields is None or part not in fields:
            return False
        value = getattr(value, part)
        model_type = type(value)
    return path in SHORTHANDS.values() or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def parse_vary(spec: str, base: Scenario) -> Vary:
    """``utilization=0.3:0.95``, ``hourly_price=x0.8:x1.2`` (relative) or ``a.b.c=1:2:9``."""
    name, sep, rng = spec.partition("=")
    name = name.strip()
    path = SHORTHANDS.get(name, name)
    if not sep or not name:
        raise UserError(f"--vary {spec!r}: expected NAME=LOW:HIGH[:POINTS]")
    if not _numeric_path(path):
        known = ", ".join(sorted(SHORTHANDS))
        raise UserError(f"--vary {spec!r}: unknown assumption {name!r} (try {known})")
    parts = rng.split(":")
    if len(parts) not in (2, 3):
        raise UserError(f"--vary {spec!r}: expected NAME=LOW:HIGH[:POINTS]")
    current = float(_get(base, path))

    def value(text: str) -> float:
        text = text.strip()
        try:
            return current * float(text[1:]) if text.startswith("x") else float(text)
        except ValueError:
            raise UserError(f"--vary {spec!r}: {text!r} is not a number") from None

    low, high = value(parts[0]), value(parts[1])
    if not low < high:
        raise UserError(f"--vary {spec!r}: LOW must be below HIGH")
    points = 9
    if len(parts) == 3:
        try:
            points = int(parts[2])
        except ValueError:
            points = 0
        if not 2 <= points <= 200:
            raise UserError(f"--vary {spec!r}: POINTS must be an integer from 2 to 200")
    return Vary(name=name, path=path, low=low, high=high, points=points)


def _set(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = dict(raw)
    head, _, rest = path.partition(".")
    if rest:
        inner = out.get(head)
        out[head] = _set(inner if isinstance(inner, dict) else {}, rest, value)
    else:
        out[head] = value
    return out


def sweep(raw: dict[str, Any], base: Resolved, vary: Vary) -> dict[str, Any]:
    """Break-even (first and sustained) at ``vary.points`` values across the range."""
    step = (vary.high - vary.low) / (vary.points - 1)
    integer = isinstance(_get(base.scenario, vary.path), int)
    points = []
    for i in range(vary.points):
        value: float | int = vary.low + i * step
        if integer:
            value = round(value)
        resolved = resolve_scenario(
            parse_scenario(_set(raw, vary.path, value), f"--vary {vary.name}={value:g}")
        )
        result = break_even(CostModel.of(resolved.scenario))
        points.append(
            {
                "value": value,
                "never": result.never,
                "first_tokens": result.first,
                "sustained_tokens": result.sustained,
            }
        )
    base_result = break_even(CostModel.of(base.scenario))
    return {
        "name": vary.name,
        "path": vary.path,
        "low": vary.low,
        "high": vary.high,
        "base_value": _get(base.scenario, vary.path),
        "base_first_tokens": base_result.first,
        "first_at_low": points[0]["first_tokens"],
        "first_at_high": points[-1]["first_tokens"],
        "points": points,
    }


def swing(row: dict[str, Any], never_as: float) -> float:
    """How far the first break-even moves across the range (``never`` counts as ``never_as``)."""
    values = [
        p["first_tokens"] if p["first_tokens"] is not None else never_as for p in row["points"]
    ]
    return max(values) - min(values)
