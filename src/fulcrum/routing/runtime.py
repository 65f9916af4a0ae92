"""The live routing state shared by the planner and the call stage, built once per process.

Every part is optional: a gateway without PT deployments has no capacity tracker, one
without vLLM metrics has no scraped load, and the hot path skips what is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fulcrum.routing.breaker import CircuitBreaker
from fulcrum.routing.load import LoadTracker
from fulcrum.routing.provisioned import ProvisionedCapacity


@dataclass(slots=True)
class RoutingRuntime:
    """Circuit breakers, load signals and Provisioned Throughput capacity."""

    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    load: LoadTracker | None = None
    provisioned: ProvisionedCapacity | None = None
    max_output: dict[str, int] = field(default_factory=dict)  # per PT deployment
