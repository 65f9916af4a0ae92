"""The plan stage: which deployments may serve a request, in the order to try them.

Composition, in this order: residency (the tenant's data policy removes deployments outside
it — absolutely), workload class (its preferred deployments first), the route's strategy
(priority, weighted, least-busy, cost) within that group, then health (circuit-open
deployments drop out; not-ready, saturated or recently failing ones go last).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from fulcrum.api.errors import ApiError, model_not_found
from fulcrum.auth.principal import UNRESTRICTED, Principal
from fulcrum.config import WORKLOADS, DataPolicy, ModelRoute, TenantConfig, Workload
from fulcrum.providers.estimate import estimate_prompt_tokens
from fulcrum.routing.health import HealthRegistry
from fulcrum.routing.policy import Boundary, apply_strategy, permitted, prefer_workload
from fulcrum.schema.openai import InferenceRequest

DEFAULT_OUTPUT_ESTIMATE = 256
_UNRESTRICTED = DataPolicy()


@dataclass(frozen=True, slots=True)
class DeploymentFacts:
    """What routing needs to know about a deployment, fixed at start-up."""

    boundary: Boundary
    cost_per_1k_input: float = 0.0
    cost_per_1k_output: float = 0.0
    max_waiting: int | None = None


class LoadView(Protocol):
    """Live load signals (in-flight counts, scraped vLLM queues)."""

    def score(self, name: str) -> float: ...

    def saturated(self, name: str, max_waiting: int) -> bool: ...


class BreakerView(Protocol):
    @property
    def state(self) -> str: ...


@dataclass(slots=True)
class Plan:
    """The deployments to try, in order, and why others were set aside."""

    deployments: list[str]
    workload: Workload
    demoted: list[tuple[str, str]] = field(default_factory=list)  # tried last: (name, reason)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # not tried: (name, reason)


class Planner:
    """Resolves a public model alias to an ordered plan for one request."""

    def __init__(
        self,
        routes: Mapping[str, ModelRoute],
        facts: Mapping[str, DeploymentFacts],
        tenants: Mapping[str, TenantConfig],
        health: HealthRegistry,
        *,
        breakers: Mapping[str, BreakerView] | None = None,
        load: LoadView | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._routes = dict(routes)
        self._facts = dict(facts)
        self._tenants = dict(tenants)
        self._health = health
        self._breakers = dict(breakers or {})
        self._load = load
        self._rng = rng or random.Random()

    @property
    def aliases(self) -> list[str]:
        return list(self._routes)

    def knows(self, alias: str) -> bool:
        return alias in self._routes

    def route(self, alias: str) -> ModelRoute | None:
        return self._routes.get(alias)

    def _tenant(self, principal: Principal) -> TenantConfig | None:
        """The policy authentication attached, else the configured one (tests, tools)."""
        if principal.policy is not UNRESTRICTED:
            return principal.policy
        return self._tenants.get(principal.tenant)

    def policy_of(self, principal: Principal) -> DataPolicy:
        tenant = self._tenant(principal)
        return tenant.data_policy if tenant is not None else _UNRESTRICTED

    def workload_of(
        self, principal: Principal, route: ModelRoute, hint: Workload | None
    ) -> Workload:
        if hint is not None:
            return hint
        tenant = self._tenant(principal)
        if tenant is not None and tenant.default_workload is not None:
            return tenant.default_workload
        return route.default_workload

    def eligible(self, principal: Principal, alias: str) -> list[str]:
        """The alias's deployments the tenant's data policy allows (no health, no order)."""
        route = self._routes.get(alias)
        if route is None:
            return []
        policy = self.policy_of(principal)
        return [name for name in route.deployments if permitted(policy, self._facts[name].boundary)]

    def plan(
        self, principal: Principal, request: InferenceRequest, workload: Workload | None = None
    ) -> Plan:
        route = self._routes.get(request.model)
        if route is None:
            raise model_not_found(request.model)
        policy = self.policy_of(principal)
        candidates = self.eligible(principal, request.model)
        if not candidates:
            raise ApiError(
                503,
                f"No deployment of `{request.model}` satisfies the data policy of tenant "
                f"`{principal.tenant}` ({policy.describe()}); the request was not sent anywhere.",
                type="policy_error",
                code="no_deployment_within_policy",
            )
        chosen_workload = self.workload_of(principal, route, workload)
        order, head = prefer_workload(candidates, route.workloads.get(chosen_workload, []))
        order = apply_strategy(
            order, head, route, rng=self._rng, load=self._load_score, cost=self._cost(request)
        )
        return self._by_health(order, chosen_workload)

    def _load_score(self, name: str) -> float:
        return self._load.score(name) if self._load is not None else 0.0

    def _cost(self, request: InferenceRequest) -> _CostOf:
        body = request.body
        output = body.get("max_completion_tokens") or body.get("max_tokens")
        return _CostOf(
            self._facts,
            estimate_prompt_tokens(body),
            output if isinstance(output, int) else DEFAULT_OUTPUT_ESTIMATE,
        )

    def _by_health(self, order: list[str], workload: Workload) -> Plan:
        plan = Plan(deployments=[], workload=workload)
        last: list[str] = []
        for name in order:
            breaker = self._breakers.get(name)
            if breaker is not None and breaker.state == "open":
                plan.dropped.append((name, "circuit_open"))
                continue
            reason = self._demotion(name)
            if reason is None:
                plan.deployments.append(name)
            else:
                plan.demoted.append((name, reason))
                last.append(name)
        plan.deployments.extend(last)
        if not plan.deployments:
            raise ApiError(
                503,
                "Every deployment of this model is unavailable (circuit open); retry shortly.",
                type="upstream_error",
                code="no_available_deployment",
                headers={"Retry-After": "1"},
            )
        return plan

    def _demotion(self, name: str) -> str | None:
        if not self._health.usable(name):
            return "unhealthy"
        max_waiting = self._facts[name].max_waiting
        load = self._load
        if load is not None and max_waiting is not None and load.saturated(name, max_waiting):
            return "saturated"
        return None


class _CostOf:
    """Expected cost of one request on a deployment, from its token prices."""

    __slots__ = ("_facts", "_input", "_output")

    def __init__(self, facts: Mapping[str, DeploymentFacts], tokens_in: int, tokens_out: int):
        self._facts = facts
        self._input = tokens_in
        self._output = tokens_out

    def __call__(self, name: str) -> float:
        fact = self._facts[name]
        return (
            self._input * fact.cost_per_1k_input + self._output * fact.cost_per_1k_output
        ) / 1000


def parse_workload(value: str | None) -> Workload | None:
    """The ``x-fulcrum-workload`` header, or a 400 naming the allowed values."""
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    for workload in WORKLOADS:
        if workload == lowered:
            return workload
    raise ApiError(
        400,
        f"x-fulcrum-workload must be one of {', '.join(WORKLOADS)}",
        param="x-fulcrum-workload",
        code="invalid_workload",
    )
