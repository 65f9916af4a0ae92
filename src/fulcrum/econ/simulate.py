"""Time-stepped simulation (1-minute steps) of a hybrid fleet: GPUs first, spill to the API.

Everything is a numpy array over the minutes of the run, so 30 days (43 200 steps) take a few
milliseconds. The autoscaler is expressed without a Python loop over time:

* desired nodes   ``D(t) = clamp(ceil(demand(t) / (node_capacity · target_utilization)),
  min_warm, max_nodes)`` — a reactive autoscaler that sees the current demand;
* provisioned     ``P(t) = max(D(t - delay … t))`` — scale-down waits ``scale_down_delay``
  (the stabilisation window of Kubernetes' HPA), scale-up is asked for at once;
* ready           node *k* (the k-th unit of ``P``, newest removed first) is ready once it has
  been provisioned continuously for its cold start (drawn per launch, uniform in
  ``cold_start_minutes``), and a spot interruption makes it unready for ``recovery_hours``.

GPUs serve ``min(demand, ready · node_capacity)``; the rest spills to the API, so served +
spilled = demand by construction. Nodes are paid while provisioned (booting included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from fulcrum.econ.cost import CostModel
from fulcrum.econ.loadshape import demand_mean_over_peak
from fulcrum.econ.scenario import Fleet, LoadShape, Scenario
from fulcrum.econ.usage import HourlyVolume

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MINUTES_PER_DAY = 24 * 60


def synthetic_demand(
    shape: LoadShape, volume_per_month: float, hours_per_month: float, days: int
) -> FloatArray:
    """Tokens per minute: a square diurnal wave with the shape's peaks, averaging the volume.

    Mean per minute is ``volume / (hours_per_month · 60)``; peak ``P = mean / (p + (1 - p)/R)``
    for ``24·p/k`` hours from ``peak_start_hour + j·24/k`` (j < k), valley ``P / R`` otherwise.
    """
    minutes = np.arange(days * MINUTES_PER_DAY)
    of_day = minutes % MINUTES_PER_DAY
    mean = volume_per_month / (hours_per_month * 60)
    peak = mean / demand_mean_over_peak(shape.peak_to_valley, shape.peak_fraction)
    span = MINUTES_PER_DAY / shape.peaks_per_day
    length = shape.peak_fraction * span
    offset = (of_day - shape.peak_start_hour * 60) % span
    in_peak = offset < length
    return np.where(in_peak, peak, peak / shape.peak_to_valley).astype(np.float64)


def flat_demand(volume_per_month: float, hours_per_month: float, days: int) -> FloatArray:
    """Constant demand (no load shape given)."""
    return np.full(days * MINUTES_PER_DAY, volume_per_month / (hours_per_month * 60))


def measured_demand(rows: list[HourlyVolume], days: int) -> FloatArray:
    """Tokens per minute from measured hourly volumes, repeated to fill ``days``.

    Hours without rows between the first and the last count as zero; each hour's tokens are
    spread evenly over its 60 minutes.
    """
    if not rows:
        raise ValueError("no usage rows")
    first = min(row.hour for row in rows)
    last = max(row.hour for row in rows)
    hours = int((last - first) / timedelta(hours=1)) + 1
    hourly = np.zeros(hours)
    for row in rows:
        hourly[int((row.hour - first) / timedelta(hours=1))] += row.tokens
    needed = days * 24
    tiled = np.resize(hourly, needed)  # repeats cyclically
    return np.repeat(tiled / 60.0, 60)


@dataclass(frozen=True)
class Fleetline:
    """Provisioned and ready nodes per minute."""

    provisioned: IntArray
    ready: IntArray


def _rolling_max(values: IntArray, window: int) -> IntArray:
    if window <= 0:
        return values
    padded = np.concatenate([np.full(window, values[0]), values])
    view = np.lib.stride_tricks.sliding_window_view(padded, window + 1)
    out: IntArray = view.max(axis=1)
    return out


def readiness(
    provisioned: IntArray,
    cold_start: tuple[float, float],
    interruption_rate_per_minute: float,
    recovery_minutes: float,
    rng: np.random.Generator,
) -> IntArray:
    """Ready nodes per minute for a provisioned-nodes curve (see the module docstring)."""
    steps = provisioned.shape[0]
    t = np.arange(steps)
    ready = np.zeros(steps, dtype=np.int64)
    recovery = math.ceil(recovery_minutes)
    for level in range(1, int(provisioned.max(initial=0)) + 1):
        up = provisioned >= level
        previous = np.concatenate([[False], up[:-1]])
        launch = up & ~previous
        duration = np.zeros(steps, dtype=np.int64)
        count = int(launch.sum())
        if count:
            draws = rng.uniform(cold_start[0], cold_start[1], size=count)
            duration[launch] = np.ceil(draws).astype(np.int64)
        if up[0]:
            duration[0] = 0  # the run starts with its initial fleet warm
        reset = launch.copy()
        if interruption_rate_per_minute > 0:
            hit = up & ~launch & (rng.random(steps) < interruption_rate_per_minute)
            reset |= hit
            duration[hit] = recovery
        last = np.maximum.accumulate(np.where(reset, t, -1))
        since = t - last
        ready += (up & (last >= 0) & (since >= duration[np.maximum(last, 0)])).astype(np.int64)
    return ready


def autoscaled_fleet(
    demand: FloatArray,
    node_capacity: float,
    fleet: Fleet,
    warm: int,
    interruption_rate: float,
    recovery_minutes: float,
    rng: np.random.Generator,
) -> Fleetline:
    """Provisioned and ready nodes of the reactive autoscaler with ``warm`` nodes minimum."""
    desired = np.ceil(demand / (node_capacity * fleet.target_utilization) - 1e-9).astype(np.int64)
    desired = np.maximum(desired, warm)
    if fleet.max_nodes is not None:
        desired = np.minimum(desired, max(fleet.max_nodes, warm))
    provisioned = _rolling_max(desired, math.ceil(fleet.scale_down_delay_minutes))
    ready = readiness(
        provisioned, fleet.cold_start_minutes, interruption_rate, recovery_minutes, rng
    )
    return Fleetline(provisioned=provisioned, ready=ready)


def fixed_fleet(
    demand: FloatArray,
    nodes: int,
    interruption_rate: float,
    recovery_minutes: float,
    cold_start: tuple[float, float],
    rng: np.random.Generator,
) -> Fleetline:
    """A constant fleet (sized for the peak); only interruptions make nodes unready."""
    provisioned = np.full(demand.shape[0], nodes, dtype=np.int64)
    ready = readiness(provisioned, cold_start, interruption_rate, recovery_minutes, rng)
    return Fleetline(provisioned=provisioned, ready=ready)


@dataclass(frozen=True)
class Outcome:
    """One strategy's month: costs, tokens per backend, utilization, and its curves."""

    name: str
    warm_nodes: int | None
    metrics: dict[str, Any]
    fleet: Fleetline | None
    gpu_served: FloatArray
    spilled: FloatArray


@dataclass(frozen=True)
class Prices:
    """What one simulated minute costs."""

    api_per_token: float
    egress_per_token: float
    committed_hourly: float  # reserved nodes (paid every minute of the run)
    burst_hourly: float  # nodes above the committed ones (paid while provisioned)
    committed_nodes: int
    fixed_per_minute: float


def _account(
    name: str,
    warm: int | None,
    demand: FloatArray,
    line: Fleetline | None,
    node_capacity: float,
    prices: Prices,
) -> Outcome:
    if line is None:
        gpu = np.zeros_like(demand)
        node_minutes = 0.0
        gpu_cost = 0.0
        fixed = 0.0
        booting = np.zeros(demand.shape[0], dtype=bool)
        peak_nodes = 0
    else:
        gpu = np.minimum(demand, line.ready * node_capacity)
        node_minutes = float(line.provisioned.sum())
        committed = min(prices.committed_nodes, int(line.provisioned.max(initial=0)))
        burst_minutes = float(np.maximum(line.provisioned - committed, 0).sum())
        gpu_cost = (
            committed * demand.shape[0] * prices.committed_hourly
            + burst_minutes * prices.burst_hourly
        ) / 60
        fixed = prices.fixed_per_minute * demand.shape[0]
        booting = line.provisioned > line.ready
        peak_nodes = int(line.provisioned.max(initial=0))
    spilled = demand - gpu
    total_demand = float(demand.sum())
    gpu_tokens = float(gpu.sum())
    spill_tokens = float(spilled.sum())
    api_cost = spill_tokens * prices.api_per_token
    egress = gpu_tokens * prices.egress_per_token
    total = gpu_cost + fixed + egress + api_cost
    capacity = node_minutes * node_capacity
    metrics = {
        "cost_total": total,
        "cost_gpu": gpu_cost,
        "cost_fixed": fixed,
        "cost_egress": egress,
        "cost_api": api_cost,
        "cost_per_1k": total / total_demand * 1000 if total_demand else None,
        "tokens_demand": total_demand,
        "tokens_gpu": gpu_tokens,
        "tokens_api": spill_tokens,
        "share_gpu": gpu_tokens / total_demand if total_demand else 0.0,
        "share_api": spill_tokens / total_demand if total_demand else 0.0,
        "tokens_spilled_cold_start": float(spilled[booting].sum()),
        "gpu_utilization": gpu_tokens / capacity if capacity else None,
        "node_hours": node_minutes / 60,
        "peak_nodes": peak_nodes,
    }
    return Outcome(name, warm, metrics, line, gpu, spilled)


@dataclass(frozen=True)
class Simulation:
    """All strategies over one demand curve."""

    demand: FloatArray
    outcomes: tuple[Outcome, ...]
    node_capacity_per_minute: float
    peak_sized_nodes: int


def simulate(
    scenario: Scenario,
    demand: FloatArray,
    warm_options: list[int] | None = None,
) -> Simulation:
    """Run managed-only, peak-sized and hybrid (one per warm-node count) over ``demand``."""
    model = CostModel.of(scenario)
    hosted = scenario.self_hosted
    fleet = scenario.fleet
    node_capacity = hosted.throughput_tps * 60.0
    rate = 0.0
    recovery = 0.0
    on_demand = hosted.hourly_price
    if hosted.pricing == "spot":
        spot = hosted.spot
        rate = (
            spot.interruptions_per_month
            * (1 - spot.on_demand_fallback_share)
            / (scenario.hours_per_month * 60)
        )
        recovery = spot.recovery_hours * 60
        share = spot.on_demand_fallback_share
        node_hourly = (1 - share) * on_demand * (1 - spot.discount) + share * on_demand
    elif hosted.pricing == "reserved":
        node_hourly = on_demand * (1 - hosted.reserved_discount)
    else:
        node_hourly = on_demand
    fixed_per_minute = model.fixed / (scenario.hours_per_month * 60)

    def prices(committed: int) -> Prices:
        reserved = hosted.pricing == "reserved"
        return Prices(
            api_per_token=model.api_per_token,
            egress_per_token=model.egress_per_token,
            committed_hourly=node_hourly if reserved else on_demand,
            burst_hourly=on_demand if reserved else node_hourly,
            committed_nodes=committed if reserved else 0,
            fixed_per_minute=fixed_per_minute,
        )

    max_util = (
        scenario.load_shape.max_utilization if scenario.load_shape else fleet.target_utilization
    )
    peak = float(demand.max(initial=0.0))
    peak_nodes = max(hosted.min_instances, math.ceil(peak / (node_capacity * max_util) - 1e-9), 1)
    rng = np.random.default_rng(fleet.seed)
    outcomes = [
        _account("managed_only", None, demand, None, node_capacity, prices(0)),
        _account(
            "peak_sized",
            None,
            demand,
            fixed_fleet(demand, peak_nodes, rate, recovery, fleet.cold_start_minutes, rng),
            node_capacity,
            prices(peak_nodes),
        ),
    ]
    for warm in warm_options if warm_options is not None else [fleet.min_warm_nodes]:
        line = autoscaled_fleet(demand, node_capacity, fleet, warm, rate, recovery, rng)
        outcomes.append(
            _account(f"hybrid_warm_{warm}", warm, demand, line, node_capacity, prices(warm))
        )
    return Simulation(
        demand=demand,
        outcomes=tuple(outcomes),
        node_capacity_per_minute=node_capacity,
        peak_sized_nodes=peak_nodes,
    )


def downsample(values: FloatArray | IntArray, step: int) -> list[float]:
    """Means over blocks of ``step`` minutes (for charts)."""
    usable = values.shape[0] // step * step
    return [float(x) for x in values[:usable].reshape(-1, step).mean(axis=1)]
