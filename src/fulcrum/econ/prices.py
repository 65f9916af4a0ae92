"""The price catalogue (``econ/prices.yaml``): dated, sourced list prices scenarios refer to.

Prices live in data, never in code, so that each figure carries its date and source and a
stale figure is visible in every output that used it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fulcrum.config import format_validation_error
from fulcrum.errors import UserError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenPrice(_Strict):
    """USD per 1K input / output tokens in one region."""

    price_in_per_1k: float = Field(ge=0)
    price_out_per_1k: float = Field(ge=0)


class InstancePrice(_Strict):
    """USD per instance-hour in one region; ``None`` when the catalogue does not know it."""

    on_demand: float | None = Field(default=None, gt=0)
    reserved_1y: float | None = Field(default=None, gt=0)


class _Entry(_Strict):
    description: str
    as_of: str
    source: str
    verified: bool
    note: str = ""


class ModelEntry(_Entry):
    regions: dict[str, TokenPrice]


class InstanceEntry(_Entry):
    regions: dict[str, InstancePrice]


class Catalog(_Strict):
    """Bedrock model prices and EC2 GPU instance prices, by name and region."""

    bedrock: dict[str, ModelEntry]
    ec2: dict[str, InstanceEntry]

    def model(self, name: str, region: str, key: str) -> tuple[TokenPrice, ModelEntry]:
        """The token price of ``name`` in ``region``; ``key`` names the scenario key on error."""
        entry = _entry(self.bedrock, _bare(name), name, key)
        return _regional(entry.regions, name, region, key), entry

    def instance(self, name: str, region: str, key: str) -> tuple[InstancePrice, InstanceEntry]:
        """The hourly prices of ``name`` in ``region``; ``key`` names the scenario key on error."""
        entry = _entry(self.ec2, name, name, key)
        return _regional(entry.regions, name, region, key), entry


E = TypeVar("E")
P = TypeVar("P")


def _entry(table: Mapping[str, E], lookup: str, name: str, key: str) -> E:
    entry = table.get(lookup)
    if entry is None:
        known = ", ".join(sorted(table))
        raise UserError(f"{key}: unknown catalogue entry {name!r} (known: {known})")
    return entry


def _regional(regions: Mapping[str, P], name: str, region: str, key: str) -> P:
    price = regions.get(region)
    if price is None:
        known = ", ".join(sorted(regions))
        raise UserError(f"{key}: {name!r} has no price for region {region!r} ({known})")
    return price


def _bare(name: str) -> str:
    """``bedrock/anthropic.claude-3-haiku`` and ``anthropic.claude-3-haiku`` name one entry."""
    return name.removeprefix("bedrock/")


def parse_catalog(raw: Any) -> Catalog:
    """Validate a parsed catalogue document."""
    try:
        return Catalog.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"price catalogue: {format_validation_error(exc)}") from None


@cache
def default_catalog() -> Catalog:
    """The catalogue shipped with the package (read once)."""
    text = resources.files("fulcrum.econ").joinpath("prices.yaml").read_text(encoding="utf-8")
    return parse_catalog(yaml.safe_load(text))


def catalog_rows(catalog: Catalog) -> list[dict[str, Any]]:
    """One flat row per (entry, region), for `fulcrum econ prices`."""
    rows: list[dict[str, Any]] = []
    for name, model in sorted(catalog.bedrock.items()):
        for region, token in sorted(model.regions.items()):
            rows.append(
                {
                    "kind": "bedrock",
                    "name": name,
                    "region": region,
                    "price_in_per_1k": token.price_in_per_1k,
                    "price_out_per_1k": token.price_out_per_1k,
                    "as_of": model.as_of,
                    "source": model.source,
                    "verified": model.verified,
                    "note": model.note,
                }
            )
    for name, inst in sorted(catalog.ec2.items()):
        for region, hourly in sorted(inst.regions.items()):
            rows.append(
                {
                    "kind": "ec2",
                    "name": name,
                    "region": region,
                    "on_demand_hourly": hourly.on_demand,
                    "reserved_1y_hourly": hourly.reserved_1y,
                    "as_of": inst.as_of,
                    "source": inst.source,
                    "verified": inst.verified,
                    "note": inst.note,
                }
            )
    return rows
