"""Routing policies as pure functions: residency, workload preference, strategies.

Each takes the candidate order and returns a new one; the planner composes them. Residency
comes first and is absolute: what it removes is never seen by any later stage.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fulcrum.config import DataPolicy, ModelRoute

ANY_REGION = "*"


@dataclass(frozen=True, slots=True)
class Boundary:
    """Where a deployment may process data, and whether that is inside the platform's VPC."""

    regions: tuple[str, ...]  # every region a request may land in; empty = unknown
    in_vpc: bool


def permitted(policy: DataPolicy, boundary: Boundary) -> bool:
    """True only when every place the deployment may process data satisfies the policy.

    Unknown regions never satisfy a region policy, and a profile that may run anywhere
    (``global.``) satisfies only a policy that allows anywhere.
    """
    if policy.vpc_only and not boundary.in_vpc:
        return False
    allowed = policy.allowed_regions
    if allowed is None:
        return True
    if ANY_REGION in allowed:
        return True
    if not boundary.regions or ANY_REGION in boundary.regions:
        return False
    return all(region in allowed for region in boundary.regions)


def prefer_workload(order: Sequence[str], preferred: Sequence[str]) -> tuple[list[str], int]:
    """The workload's preferred deployments first (in their order), then the rest.

    Returns the new order and the size of the head group the strategy may reorder.
    """
    available = set(order)
    head = [name for name in preferred if name in available]
    if not head:
        return list(order), len(order)
    chosen = set(head)
    return head + [name for name in order if name not in chosen], len(head)


def weighted_first(
    group: Sequence[str], weights: Mapping[str, float], rng: random.Random
) -> list[str]:
    """One deployment drawn by weight goes first; the others keep their priority order."""
    positive = [(name, weights.get(name, 0.0)) for name in group]
    total = sum(weight for _, weight in positive)
    if total <= 0:
        return list(group)
    pick = rng.random() * total
    for name, weight in positive:
        pick -= weight
        if pick < 0 and weight > 0:
            return [name] + [other for other in group if other != name]
    return list(group)


def sort_by(group: Sequence[str], key: Callable[[str], float]) -> list[str]:
    """Stable sort: ties keep the configured priority order."""
    return sorted(group, key=key)


def apply_strategy(
    order: list[str],
    head: int,
    route: ModelRoute,
    *,
    rng: random.Random,
    load: Callable[[str], float],
    cost: Callable[[str], float],
) -> list[str]:
    """Reorder the head group of ``order`` by the route's strategy."""
    group, tail = order[:head], order[head:]
    if route.strategy == "weighted":
        group = weighted_first(group, route.weights, rng)
    elif route.strategy == "least_busy":
        group = sort_by(group, load)
    elif route.strategy == "cost":
        group = sort_by(group, cost)
    return group + tail
