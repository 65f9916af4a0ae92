"""Planner: residency first (absolute), workload preference, strategies, health last."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from fulcrum.api.errors import ApiError
from fulcrum.auth.principal import ANONYMOUS, Principal
from fulcrum.config import DataPolicy, ModelRoute, TenantConfig
from fulcrum.routing.health import HealthRegistry
from fulcrum.routing.planner import DeploymentFacts, Planner, parse_workload
from fulcrum.routing.policy import Boundary
from fulcrum.schema.openai import Endpoint, InferenceRequest

VLLM_SP = DeploymentFacts(Boundary(("sa-east-1",), in_vpc=True), 0.0001, 0.0001, max_waiting=8)
BEDROCK_SP = DeploymentFacts(Boundary(("sa-east-1",), in_vpc=False), 0.00025, 0.00125)
BEDROCK_US = DeploymentFacts(Boundary(("us-east-1", "us-west-2"), in_vpc=False), 0.0002, 0.001)
BEDROCK_GLOBAL = DeploymentFacts(Boundary(("*",), in_vpc=False), 0.0001, 0.0005)
FACTS = {"vllm": VLLM_SP, "br-sp": BEDROCK_SP, "br-us": BEDROCK_US, "br-global": BEDROCK_GLOBAL}
ALL = ["vllm", "br-sp", "br-us", "br-global"]

TENANTS = {
    "lgpd": TenantConfig(data_policy=DataPolicy(allowed_regions=("sa-east-1",))),
    "vpc": TenantConfig(data_policy=DataPolicy(vpc_only=True)),
    "batchy": TenantConfig(default_workload="batch"),
    "us-only": TenantConfig(data_policy=DataPolicy(allowed_regions=("us-east-1",))),
}


def request(model: str = "m", **body: object) -> InferenceRequest:
    return InferenceRequest(
        Endpoint.CHAT, model, dict(body), stream=False, client_wants_usage=False
    )


def planner(route: ModelRoute, health: HealthRegistry | None = None, **kw: object) -> Planner:
    return Planner(
        {"m": route},
        FACTS,
        TENANTS,
        health or HealthRegistry(FACTS),
        **kw,  # type: ignore[arg-type]
    )


def tenant(name: str) -> Principal:
    return Principal(tenant=name, subject="t")


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("default", ALL),
        ("lgpd", ["vllm", "br-sp"]),
        ("vpc", ["vllm"]),
        ("us-only", []),  # br-us may also run in us-west-2; global may run anywhere
    ],
)
def test_residency_filters_before_anything_else(who: str, expected: list[str]) -> None:
    chosen = planner(ModelRoute(deployments=ALL))
    if not expected:
        with pytest.raises(ApiError) as info:
            chosen.plan(tenant(who), request())
        assert info.value.status == 503
        assert info.value.code == "no_deployment_within_policy"
        assert "allowed_regions=us-east-1" in info.value.message
        return
    assert chosen.plan(tenant(who), request()).deployments == expected


def test_residency_holds_even_when_allowed_deployments_are_unhealthy() -> None:
    health = HealthRegistry(FACTS)
    for name in ("vllm", "br-sp"):
        health.mark(name, False)
    plan = planner(ModelRoute(deployments=ALL), health).plan(tenant("lgpd"), request())
    assert plan.deployments == ["vllm", "br-sp"]  # demoted, still only these two
    assert {name for name, _ in plan.demoted} == {"vllm", "br-sp"}


@pytest.mark.parametrize(
    ("who", "hint", "expected_first", "workload"),
    [
        ("default", None, "br-sp", "interactive"),
        ("default", "batch", "vllm", "batch"),
        ("batchy", None, "vllm", "batch"),
        ("batchy", "interactive", "br-sp", "interactive"),
    ],
)
def test_workload_class_orders_preferred_deployments_first(
    who: str, hint: str | None, expected_first: str, workload: str
) -> None:
    route = ModelRoute(
        deployments=ALL, workloads={"batch": ["vllm"], "interactive": ["br-sp", "br-us"]}
    )
    plan = planner(route).plan(tenant(who), request(), parse_workload(hint))
    assert plan.deployments[0] == expected_first
    assert plan.workload == workload
    assert sorted(plan.deployments) == sorted(ALL)


def test_weighted_split_is_within_three_percent_over_2000_requests() -> None:
    route = ModelRoute(
        deployments=["vllm", "br-sp"], strategy="weighted", weights={"vllm": 5, "br-sp": 95}
    )
    chosen = planner(route, rng=random.Random(7))
    firsts = Counter(chosen.plan(ANONYMOUS, request()).deployments[0] for _ in range(2000))
    assert abs(firsts["vllm"] / 2000 - 0.05) <= 0.03
    assert abs(firsts["br-sp"] / 2000 - 0.95) <= 0.03
    # the other deployment is still the fallback of every plan
    assert all(len(chosen.plan(ANONYMOUS, request()).deployments) == 2 for _ in range(10))


class FakeLoad:
    """Load signals as the LoadTracker would report them."""

    def __init__(self, scores: dict[str, float], waiting: dict[str, float]) -> None:
        self.scores = scores
        self.waiting = waiting

    def score(self, name: str) -> float:
        return self.scores.get(name, 0.0)

    def saturated(self, name: str, max_waiting: int) -> bool:
        return self.waiting.get(name, 0.0) > max_waiting


def test_least_busy_prefers_the_quieter_deployment() -> None:
    route = ModelRoute(deployments=["br-sp", "vllm", "br-us"], strategy="least_busy")
    load = FakeLoad({"br-sp": 9, "vllm": 1, "br-us": 4}, {})
    plan = planner(route, load=load).plan(ANONYMOUS, request())
    assert plan.deployments == ["vllm", "br-us", "br-sp"]


def test_saturated_vllm_goes_last() -> None:
    route = ModelRoute(deployments=["vllm", "br-sp"])
    plan = planner(route, load=FakeLoad({}, {"vllm": 50})).plan(ANONYMOUS, request())
    assert plan.deployments == ["br-sp", "vllm"]
    assert plan.demoted == [("vllm", "saturated")]


def test_cost_strategy_picks_the_cheapest_for_the_expected_tokens() -> None:
    route = ModelRoute(deployments=["br-sp", "br-us", "br-global"], strategy="cost")
    plan = planner(route).plan(ANONYMOUS, request(max_tokens=1000))
    assert plan.deployments == ["br-global", "br-us", "br-sp"]


class OpenBreaker:
    state = "open"


def test_circuit_open_deployments_drop_out_and_all_open_is_503() -> None:
    route = ModelRoute(deployments=["vllm", "br-sp"])
    plan = planner(route, breakers={"vllm": OpenBreaker()}).plan(ANONYMOUS, request())
    assert plan.deployments == ["br-sp"]
    assert plan.dropped == [("vllm", "circuit_open")]
    with pytest.raises(ApiError) as info:
        planner(route, breakers={"vllm": OpenBreaker(), "br-sp": OpenBreaker()}).plan(
            ANONYMOUS, request()
        )
    assert info.value.status == 503


def test_unknown_model_is_404_and_bad_workload_is_400() -> None:
    with pytest.raises(ApiError) as info:
        planner(ModelRoute(deployments=ALL)).plan(ANONYMOUS, request("other"))
    assert info.value.status == 404
    with pytest.raises(ApiError) as bad:
        parse_workload("overnight")
    assert bad.value.status == 400


def test_passive_failure_expires_after_the_cooldown() -> None:
    now = [100.0]
    health = HealthRegistry(["vllm", "br-sp"], cooldown=10.0, clock=lambda: now[0])
    chosen = planner(ModelRoute(deployments=["vllm", "br-sp"]), health)
    health.mark("vllm", True)
    health.mark("vllm", False, passive=True)
    assert chosen.plan(ANONYMOUS, request()).deployments == ["br-sp", "vllm"]
    now[0] = 110.0
    assert chosen.plan(ANONYMOUS, request()).deployments == ["vllm", "br-sp"]


def test_active_failure_does_not_expire() -> None:
    now = [0.0]
    health = HealthRegistry(["a"], cooldown=1.0, clock=lambda: now[0])
    health.mark("a", False)
    now[0] = 1000.0
    assert not health.usable("a")
    assert health.snapshot() == {"a": False}


def test_readiness_needs_a_positive_signal() -> None:
    changes: list[tuple[str, bool]] = []
    health = HealthRegistry(["a", "b"], listener=lambda name, ok: changes.append((name, ok)))
    assert not health.any_healthy()
    health.mark("b", True)
    health.mark("b", True)
    assert health.any_healthy()
    assert changes == [("b", True)]


def test_a_passive_success_does_not_override_an_active_failure() -> None:
    health = HealthRegistry(["a"])
    health.mark("a", False)  # the active probe says not ready (hysteresis holds it)
    health.mark("a", True, passive=True)  # one request that happened to work
    assert not health.usable("a")
    health.mark("a", False, passive=True)
    health.mark("a", True, passive=True)  # after a passive failure, traffic may clear it
    assert health.usable("a")
