"""Load shape → reachable average utilization (pure functions).

The shape is two-level: for a share ``p`` of the hours demand is at its peak ``P``, the rest
of the time it is at ``P / R`` (``R`` = peak-to-valley ratio). A fleet must run at most at
``max_utilization`` at the peak, so a typed average utilization above what the shape allows
is a promise the fleet cannot keep.
"""

from __future__ import annotations

from dataclasses import dataclass


def demand_mean_over_peak(peak_to_valley: float, peak_fraction: float) -> float:
    """Average demand as a share of peak demand: ``p + (1 - p) / R``."""
    return peak_fraction + (1 - peak_fraction) / peak_to_valley


def fixed_fleet_utilization(
    peak_to_valley: float, peak_fraction: float, max_utilization: float
) -> float:
    """Average utilization of a fleet sized for the peak: ``u_max · (p + (1 - p) / R)``."""
    return max_utilization * demand_mean_over_peak(peak_to_valley, peak_fraction)


@dataclass(frozen=True)
class Autoscaled:
    """An autoscaled fleet: share of the peak fleet paid on average, and its utilization."""

    fleet_fraction: float
    average_utilization: float
    extra_hours_per_peak: float


def autoscaled(
    peak_to_valley: float,
    peak_fraction: float,
    max_utilization: float,
    peaks_per_day: int,
    extra_hours_per_peak: float,
) -> Autoscaled:
    """A fleet that follows the shape but must start ``extra_hours_per_peak`` early / stop late.

    Scaling up takes the cold start (the fleet for each peak is asked for that long before it),
    and scaling down waits the scale-down delay, so the peak fleet is paid for
    ``h = min(24, 24·p + k·x)`` hours a day (``k`` peaks, ``x`` extra hours each) and the
    valley fleet (``1/R`` of it) for the rest: fleet fraction ``f = h/24 + (1 - h/24)/R``;
    average utilization ``u_max · (p + (1 - p)/R) / f``. Whole instances are ignored here;
    the simulation counts them.
    """
    hours = min(24.0, 24.0 * peak_fraction + peaks_per_day * extra_hours_per_peak)
    share = hours / 24.0
    fraction = share + (1 - share) / peak_to_valley
    mean = demand_mean_over_peak(peak_to_valley, peak_fraction)
    return Autoscaled(
        fleet_fraction=fraction,
        average_utilization=max_utilization * mean / fraction,
        extra_hours_per_peak=extra_hours_per_peak,
    )
