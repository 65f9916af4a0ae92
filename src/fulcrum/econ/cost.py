"""The cost model: monthly cost of the managed API and of self-hosted GPUs (pure functions).

Volumes are billed tokens (input + output) per month; prices are USD. Instance counts are
computed with exact rational arithmetic, so a volume that is exactly a whole number of
instances' capacity never rounds up into an extra instance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from fulcrum.econ.scenario import Scenario, SpotTerms

BYTES_PER_GB = 1e9  # AWS bills data transfer per GB (10⁹ bytes)


def blended_price_per_1k(input_share: float, price_in_per_1k: float, price_out: float) -> float:
    """``input_share · price_in + (1 - input_share) · price_out`` (USD per 1K billed tokens)."""
    return input_share * price_in_per_1k + (1 - input_share) * price_out


def batch_factor(batch_share: float, batch_discount: float) -> float:
    """The share of list price paid when ``batch_share`` of the traffic gets the discount."""
    return 1 - batch_share * batch_discount


def instance_capacity(throughput_tps: float, utilization: float, hours_per_month: float) -> float:
    """Tokens one instance serves per month: ``throughput_tps · utilization · 3600 · hours``."""
    return throughput_tps * utilization * 3600 * hours_per_month


def exact_capacity(throughput_tps: float, utilization: float, hours_per_month: float) -> Fraction:
    """:func:`instance_capacity` as an exact rational (for whole-instance arithmetic)."""
    return Fraction(throughput_tps) * Fraction(utilization) * 3600 * Fraction(hours_per_month)


def instances_needed(volume: float | Fraction, capacity: Fraction, min_instances: int) -> int:
    """``max(min_instances, ceil(volume / capacity))``, exactly."""
    return max(min_instances, math.ceil(Fraction(volume) / capacity))


def spot_hourly(on_demand: float, spot: SpotTerms, hours_per_month: float) -> float:
    """Spot price per *productive* hour: ``on_demand·(1 - d)·H / (H - n·t)``.

    An interruption leaves the instance paid but unproductive for ``recovery_hours``, so the
    hours that serve tokens cost more than the spot list price.
    """
    productive = hours_per_month - spot.interruptions_per_month * spot.recovery_hours
    return on_demand * (1 - spot.discount) * hours_per_month / productive


def effective_hourly(
    pricing: str,
    on_demand: float,
    reserved_discount: float,
    spot: SpotTerms,
    hours_per_month: float,
) -> float:
    """USD per instance-hour under the pricing model (spot blended with on-demand fallback)."""
    if pricing == "reserved":
        return on_demand * (1 - reserved_discount)
    if pricing == "spot":
        share = spot.on_demand_fallback_share
        return (1 - share) * spot_hourly(on_demand, spot, hours_per_month) + share * on_demand
    return on_demand


def fixed_monthly(fte: float, fte_annual: float, observability: float, other: float) -> float:
    """``fte · annual loaded cost / 12 + observability + other`` (USD per month)."""
    return fte * fte_annual / 12 + observability + other


def egress_per_token(usd_per_gb: float, bytes_per_token: float) -> float:
    """USD of data transfer per token: ``usd_per_gb · bytes_per_token / 10⁹``."""
    return usd_per_gb * bytes_per_token / BYTES_PER_GB


@dataclass(frozen=True)
class CostModel:
    """The two cost functions of one scenario, reduced to their linear parameters.

    API(V) = a·V;  self(V) = n(V)·c + F + e·V  with  n(V) = max(m, ceil(V / cap)).
    """

    hours_per_month: float
    blended_per_1k: float
    api_per_token: float  # a (batch discount included)
    capacity: Fraction  # cap, tokens per instance-month
    on_demand_hourly: float
    hourly: float  # effective USD per instance-hour
    instance_monthly: float  # c = hourly · hours
    fixed: float  # F
    egress_per_token: float  # e
    min_instances: int  # m
    throughput_tps: float
    utilization: float

    @classmethod
    def of(cls, s: Scenario) -> CostModel:
        """Reduce a resolved scenario to the model's parameters."""
        hosted = s.self_hosted
        blended = blended_price_per_1k(s.input_share, s.api.price_in_per_1k, s.api.price_out_per_1k)
        hourly = effective_hourly(
            hosted.pricing,
            hosted.hourly_price,
            hosted.reserved_discount,
            hosted.spot,
            s.hours_per_month,
        )
        fm = s.fixed_monthly
        return cls(
            hours_per_month=s.hours_per_month,
            blended_per_1k=blended,
            api_per_token=blended / 1000 * batch_factor(s.api.batch_share, s.api.batch_discount),
            capacity=exact_capacity(
                hosted.throughput_tps, hosted.average_utilization, s.hours_per_month
            ),
            on_demand_hourly=hosted.hourly_price,
            hourly=hourly,
            instance_monthly=hourly * s.hours_per_month,
            fixed=fixed_monthly(fm.fte, fm.fte_annual_loaded_usd, fm.observability, fm.other),
            egress_per_token=egress_per_token(
                s.variable.egress_usd_per_gb, s.variable.bytes_per_token
            ),
            min_instances=hosted.min_instances,
            throughput_tps=hosted.throughput_tps,
            utilization=hosted.average_utilization,
        )

    def api(self, volume: float) -> float:
        """Managed API cost per month at ``volume`` tokens."""
        return self.api_per_token * volume

    def instances(self, volume: float) -> int:
        """Instances needed for ``volume`` tokens per month."""
        return instances_needed(volume, self.capacity, self.min_instances)

    def self_compute(self, volume: float) -> float:
        """Instance cost per month at ``volume``."""
        return self.instances(volume) * self.instance_monthly

    def self_variable(self, volume: float) -> float:
        """Volume-proportional self-hosted cost (egress) per month."""
        return self.egress_per_token * volume

    def self_total(self, volume: float) -> float:
        """Self-hosted total cost of ownership per month at ``volume``."""
        return self.self_compute(volume) + self.fixed + self.self_variable(volume)

    def parity_utilization(self) -> float:
        """Utilization at which compute alone costs the API's price per token.

        Compute per token at utilization u is ``hourly / (tps · 3600 · u)``; setting it equal
        to ``a`` gives ``u* = hourly / (tps · 3600 · a)``. Above 1 it never pays.
        """
        if self.api_per_token == 0:
            return math.inf
        return self.hourly / (self.throughput_tps * 3600 * self.api_per_token)

    def row(self, volume: float) -> dict[str, Any]:
        """One comparison row (the `compare` JSON contract)."""
        api = self.api(volume)
        compute = self.self_compute(volume)
        variable = self.self_variable(volume)
        total = compute + self.fixed + variable
        return {
            "volume_tokens": volume,
            "api_monthly": api,
            "self_instances": self.instances(volume),
            "self_compute_monthly": compute,
            "self_fixed_monthly": self.fixed,
            "self_variable_monthly": variable,
            "self_monthly": total,
            "api_per_1k": api / volume * 1000 if volume > 0 else None,
            "self_per_1k": total / volume * 1000 if volume > 0 else None,
            "cheaper": "self_hosted" if total < api else "api",
        }

    def derived(self) -> dict[str, Any]:
        """The intermediate figures every output shows next to the assumptions."""
        return {
            "blended_price_per_1k": self.blended_per_1k,
            "api_price_per_1k": self.api_per_token * 1000,
            "capacity_tokens_per_instance": float(self.capacity),
            "effective_hourly": self.hourly,
            "instance_monthly": self.instance_monthly,
            "fixed_monthly": self.fixed,
            "egress_per_1k": self.egress_per_token * 1000,
            "parity_utilization": self.parity_utilization(),
        }
