"""Residency is absolute: properties over random configurations, tenants, policies and states.

Two levels:

- the planner alone, over random deployments (boundaries drawn from a small set that includes
  cross-region profile geographies, ``global.``'s ``("*",)`` and unknown ``()``), routes of
  every strategy with random weights and workload orders, tenants with random data policies,
  and random health, breaker and load states: every deployment a plan lists satisfies the
  tenant's policy, every one that satisfies it is either listed or dropped for an open circuit,
  and a tenant with nothing eligible gets 503 ``no_deployment_within_policy`` naming the policy;
- the real :class:`Pipeline` (plan → call, with real breakers, load tracking, health and
  Provisioned Throughput accounting) in front of scripted in-process upstreams that fail at
  random: across a batch of concurrent requests, no upstream outside a request's policy is
  ever called for it — not first, not on fallback, not when everything eligible is down.

Eligibility is checked against an oracle written from the configuration reference in set
terms, not against :func:`permitted` itself (which is checked against the same oracle).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fulcrum.api.errors import ApiError, UpstreamError
from fulcrum.auth.principal import Principal
from fulcrum.auth.static_keys import NoAuthentication
from fulcrum.config import (
    WORKLOADS,
    DataPolicy,
    DeploymentTags,
    ModelRoute,
    TenantConfig,
)
from fulcrum.pipeline import Deployed, Pipeline, RequestContext
from fulcrum.providers.base import Completion, Usage
from fulcrum.routing.breaker import BreakerSettings, CircuitBreaker
from fulcrum.routing.health import HealthRegistry
from fulcrum.routing.load import LoadTracker
from fulcrum.routing.planner import DeploymentFacts, Plan, Planner
from fulcrum.routing.policy import Boundary, permitted
from fulcrum.routing.provisioned import ProvisionedCapacity
from fulcrum.routing.runtime import RoutingRuntime
from fulcrum.schema.openai import Endpoint, InferenceRequest
from fulcrum.telemetry.metrics import GatewayMetrics

#: Stable across runs: CI must not find a new counterexample on its own one day.
PROPERTY = settings(
    max_examples=120,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Where a deployment may process data: single regions, a ``us.``-like profile geography,
#: an EU pair, ``global.`` (anywhere), unknown (no region tag), and a mixed pair.
BOUNDARY_REGIONS: tuple[tuple[str, ...], ...] = (
    ("sa-east-1",),
    ("us-east-1",),
    ("us-east-1", "us-west-2"),
    ("eu-west-1", "eu-central-1"),
    ("*",),
    (),
    ("sa-east-1", "us-east-1"),
)
POLICY_REGIONS = ("sa-east-1", "us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "*")
UNKNOWN_TENANT = "nobody-configured-me"


def allowed_by_reference(policy: DataPolicy, boundary: Boundary) -> bool:
    """docs/configuration.md, ``tenants``, in set terms.

    ``vpc_only`` needs a deployment inside the VPC; ``allowed_regions`` absent allows anywhere,
    ``*`` in it allows anywhere; otherwise every region the deployment may process data in must
    be listed — a deployment that may run anywhere (``*``) or whose region is unknown never is.
    """
    if policy.vpc_only and not boundary.in_vpc:
        return False
    if policy.allowed_regions is None:
        return True
    allowed = set(policy.allowed_regions)
    if "*" in allowed:
        return True
    where = set(boundary.regions)
    if not where or "*" in where:
        return False
    return where <= allowed


# ---------------------------------------------------------------------------------------------
# Random worlds
# ---------------------------------------------------------------------------------------------


@dataclass
class World:
    facts: dict[str, DeploymentFacts]
    routes: dict[str, ModelRoute]
    tenants: dict[str, TenantConfig]

    def policy(self, tenant: str) -> DataPolicy:
        config = self.tenants.get(tenant)
        return config.data_policy if config is not None else DataPolicy()

    def eligible(self, tenant: str, alias: str) -> list[str]:
        policy = self.policy(tenant)
        return [
            name
            for name in self.routes[alias].deployments
            if allowed_by_reference(policy, self.facts[name].boundary)
        ]

    @property
    def principals(self) -> list[str]:
        return [*self.tenants, UNKNOWN_TENANT]


policies = st.builds(
    DataPolicy,
    allowed_regions=st.none()
    | st.lists(st.sampled_from(POLICY_REGIONS), unique=True, max_size=4).map(tuple),
    vpc_only=st.booleans(),
)
workload_or_none = st.none() | st.sampled_from(WORKLOADS)


@st.composite
def routes_over(draw: st.DrawFn, names: Sequence[str]) -> ModelRoute:
    order = draw(st.permutations(list(names)))
    members = order[: draw(st.integers(1, len(order)))]
    strategy = draw(st.sampled_from(["priority", "weighted", "least_busy", "cost"]))
    weights = {
        name: draw(st.sampled_from([0.0, 0.5, 1.0, 3.0, 95.0]))
        for name in draw(st.lists(st.sampled_from(members), unique=True))
    }
    if strategy == "weighted" and sum(weights.values()) <= 0:
        weights[members[0]] = 1.0
    workloads = {
        workload: draw(st.lists(st.sampled_from(members), unique=True))
        for workload in draw(st.lists(st.sampled_from(WORKLOADS), unique=True))
    }
    return ModelRoute(
        deployments=list(members),
        strategy=strategy,
        weights=weights,
        workloads=workloads,
        default_workload=draw(st.sampled_from(WORKLOADS)),
    )


@st.composite
def worlds(draw: st.DrawFn) -> World:
    names = [f"d{i}" for i in range(draw(st.integers(1, 6)))]
    facts = {
        name: DeploymentFacts(
            boundary=Boundary(draw(st.sampled_from(BOUNDARY_REGIONS)), in_vpc=draw(st.booleans())),
            cost_per_1k_input=draw(st.sampled_from([0.0, 0.0001, 0.00025, 0.003])),
            cost_per_1k_output=draw(st.sampled_from([0.0, 0.0002, 0.00125, 0.015])),
            max_waiting=draw(st.none() | st.integers(0, 8)),
        )
        for name in names
    }
    routes = {f"m{i}": draw(routes_over(names)) for i in range(draw(st.integers(1, 3)))}
    tenants = {
        f"t{i}": TenantConfig(data_policy=draw(policies), default_workload=draw(workload_or_none))
        for i in range(draw(st.integers(0, 4)))
    }
    return World(facts, routes, tenants)


class FakeLoad:
    """LoadView: scores for least-busy, scraped waiting queues for saturation."""

    def __init__(self, scores: Mapping[str, float], waiting: Mapping[str, int]) -> None:
        self.scores = dict(scores)
        self.waiting = dict(waiting)

    def score(self, name: str) -> float:
        return self.scores.get(name, 0.0)

    def saturated(self, name: str, max_waiting: int) -> bool:
        return self.waiting.get(name, 0) > max_waiting


@dataclass
class FakeBreaker:
    """BreakerView: only the state is read by the planner."""

    state: str


@dataclass
class States:
    health: dict[str, str]  # unknown | healthy | unhealthy | passive (a passive failure)
    breakers: dict[str, str]
    scores: dict[str, float]
    waiting: dict[str, int]
    seed: int


@st.composite
def states_for(draw: st.DrawFn, world: World) -> States:
    names = list(world.facts)
    health = st.sampled_from(["unknown", "healthy", "unhealthy", "passive"])
    breaker = st.sampled_from(["closed", "closed", "open", "half_open"])
    return States(
        health={name: draw(health) for name in names},
        breakers={name: draw(breaker) for name in names},
        scores={name: draw(st.sampled_from([0.0, 1.0, 2.5, 9.0])) for name in names},
        waiting={name: draw(st.integers(0, 12)) for name in names},
        seed=draw(st.integers(0, 2**16)),
    )


def health_registry(states: States, names: Sequence[str]) -> HealthRegistry:
    health = HealthRegistry(names, cooldown=10.0, clock=lambda: 0.0)
    for name, state in states.health.items():
        if state == "healthy":
            health.mark(name, True)
        elif state == "unhealthy":
            health.mark(name, False)
        elif state == "passive":
            health.mark(name, False, passive=True)
    return health


def chat(model: str, **body: object) -> InferenceRequest:
    return InferenceRequest(
        Endpoint.CHAT,
        model,
        {"model": model, "messages": [{"role": "user", "content": "hello there"}], **body},
        stream=False,
        client_wants_usage=False,
    )


# ---------------------------------------------------------------------------------------------
# The planner
# ---------------------------------------------------------------------------------------------


def check_plan(world: World, states: States, tenant: str, alias: str, plan: Plan) -> None:
    policy = world.policy(tenant)
    eligible = world.eligible(tenant, alias)
    listed = plan.deployments
    dropped = [name for name, _ in plan.dropped]
    # Residency: nothing outside the policy, by the reference and by the shipped predicate.
    for name in listed:
        boundary = world.facts[name].boundary
        assert allowed_by_reference(policy, boundary), (name, boundary, policy)
        assert permitted(policy, boundary), (name, boundary, policy)
    # Nothing eligible is lost: each one is listed once, or dropped for an open circuit.
    assert len(listed) == len(set(listed)), listed
    assert not set(listed) & set(dropped), (listed, dropped)
    assert sorted(listed + dropped) == sorted(eligible), (listed, dropped, eligible)
    assert all(reason == "circuit_open" for _, reason in plan.dropped), plan.dropped
    assert all(states.breakers[name] == "open" for name in dropped), plan.dropped
    assert all(states.breakers[name] != "open" for name in listed), listed
    # Demoted deployments (unhealthy, saturated) are tried, but after every other one.
    demoted = [name for name, _ in plan.demoted]
    assert listed[len(listed) - len(demoted) :] == demoted, (listed, demoted)


@PROPERTY
@given(data=st.data())
def test_every_plan_stays_inside_the_tenants_data_policy(data: st.DataObject) -> None:
    world = data.draw(worlds(), label="world")
    states = data.draw(states_for(world), label="states")
    planner = Planner(
        world.routes,
        world.facts,
        world.tenants,
        health_registry(states, list(world.facts)),
        breakers={name: FakeBreaker(state) for name, state in states.breakers.items()},
        load=FakeLoad(states.scores, states.waiting),
        rng=random.Random(states.seed),
    )
    max_tokens = data.draw(st.none() | st.integers(1, 4096), label="max_tokens")
    body = {} if max_tokens is None else {"max_tokens": max_tokens}
    for tenant, alias, hint in itertools.product(
        world.principals, world.routes, (None, *WORKLOADS)
    ):
        principal = Principal(tenant=tenant, subject="property")
        eligible = world.eligible(tenant, alias)
        assert planner.eligible(principal, alias) == eligible
        try:
            plan = planner.plan(principal, chat(alias, **body), hint)
        except ApiError as error:
            assert error.status == 503, error
            if not eligible:
                assert error.code == "no_deployment_within_policy", error
                assert world.policy(tenant).describe() in error.message, error.message
                assert f"`{tenant}`" in error.message, error.message
            else:
                assert error.code == "no_available_deployment", error
                assert all(states.breakers[name] == "open" for name in eligible)
            continue
        assert eligible, "a plan for a tenant with no eligible deployment"
        check_plan(world, states, tenant, alias, plan)
        tenant_default = world.tenants.get(tenant, TenantConfig()).default_workload
        assert plan.workload == (hint or tenant_default or world.routes[alias].default_workload)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    policy=policies,
    regions=st.sampled_from(BOUNDARY_REGIONS)
    | st.lists(st.sampled_from(POLICY_REGIONS), max_size=3).map(tuple),
    in_vpc=st.booleans(),
)
def test_permitted_matches_the_configuration_reference(
    policy: DataPolicy, regions: tuple[str, ...], in_vpc: bool
) -> None:
    boundary = Boundary(regions, in_vpc)
    assert permitted(policy, boundary) == allowed_by_reference(policy, boundary)


# ---------------------------------------------------------------------------------------------
# The pipeline, with scripted upstreams
# ---------------------------------------------------------------------------------------------

#: What a scripted upstream does with one call.
OUTCOMES = ("ok", "ok", "unreachable", "timeout", "http_503", "http_429", "http_500", "http_400")


def upstream_error(name: str, outcome: str) -> UpstreamError:
    if outcome == "unreachable":
        return UpstreamError(502, f"{name} refused", retryable=True, reason="unreachable")
    if outcome == "timeout":
        return UpstreamError(504, f"{name} timed out", retryable=True, reason="timeout")
    if outcome == "http_429":
        return UpstreamError(
            429, f"{name} throttled", retryable=True, reason="http_429", retry_after=0.5
        )
    if outcome == "http_400":
        return UpstreamError(400, f"{name} says no", retryable=False, reason="http_400")
    status = int(outcome.removeprefix("http_"))
    return UpstreamError(status, f"{name} failed", retryable=True, reason=outcome)


@dataclass
class ScriptedStream:
    """An open upstream stream: one batch of bytes, then the end."""

    usage: Usage | None = None
    completed: bool = False

    def __aiter__(self) -> ScriptedStream:
        return self

    async def __anext__(self) -> bytes:
        if self.completed:
            raise StopAsyncIteration
        self.completed = True
        self.usage = Usage(7, 3)
        return b'data: {"choices": []}\n\n'

    async def aclose(self) -> None:
        return None


@dataclass
class ScriptedUpstream:
    """A test double of an upstream server (the Provider protocol), answering from a script.

    Every call is recorded with the request id it was made for, before the outcome is known.
    """

    name: str
    script: Sequence[str]
    calls: list[tuple[str, str]]
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    async def _answer(self, request_id: str) -> None:
        self.calls.append((request_id, self.name))
        await asyncio.sleep(0)  # let concurrent requests interleave
        outcome = self.script[next(self._turn) % len(self.script)]
        if outcome != "ok":
            raise upstream_error(self.name, outcome)

    async def complete(self, request: InferenceRequest, request_id: str) -> Completion:
        await self._answer(request_id)
        return Completion(body=b"{}", usage=Usage(11, 5))

    async def open_stream(self, request: InferenceRequest, request_id: str) -> ScriptedStream:
        await self._answer(request_id)
        return ScriptedStream()

    async def check_health(self) -> bool:
        return True

    async def close(self) -> None:
        return None


@dataclass
class Call:
    tenant: str
    alias: str
    stream: bool
    max_tokens: int | None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def run_batch(pipeline: Pipeline, calls: Sequence[Call], batch: int) -> list[object]:
    async def one(index: int, call: Call) -> object:
        ctx = RequestContext(request_id=f"r{batch}-{index}", started=time.monotonic())
        ctx.principal = Principal(tenant=call.tenant, subject="property")
        body: dict[str, object] = {} if call.max_tokens is None else {"max_tokens": call.max_tokens}
        request = InferenceRequest(
            Endpoint.CHAT,
            call.alias,
            {"messages": [{"role": "user", "content": "hi"}], **body},
            stream=call.stream,
            client_wants_usage=False,
        )
        try:
            plan = await pipeline.admit(ctx, request)
            if call.stream:
                stream = await pipeline.open_stream(ctx, plan)
                async for _ in stream:
                    pass
                await pipeline.account(ctx, 200, stream.usage)
            else:
                completion = await pipeline.complete(ctx, plan)
                await pipeline.account(ctx, 200, completion.usage)
            return ctx
        except ApiError as error:
            await pipeline.account(ctx, error.status, None)
            return error

    return await asyncio.gather(*(one(i, call) for i, call in enumerate(calls)))


@PROPERTY
@given(data=st.data())
def test_the_pipeline_never_calls_an_upstream_outside_the_policy(data: st.DataObject) -> None:
    world = data.draw(worlds(), label="world")
    names = list(world.facts)
    scripts = {
        name: data.draw(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=6), label=name)
        for name in names
    }
    provisioned = {
        name: float(data.draw(st.sampled_from([300, 2000, 60000])))
        for name in data.draw(st.lists(st.sampled_from(names), unique=True), label="pt")
    }
    calls_strategy = st.builds(
        Call,
        tenant=st.sampled_from(world.principals),
        alias=st.sampled_from(list(world.routes)),
        stream=st.booleans(),
        max_tokens=st.none() | st.integers(1, 1000),
    )
    batches = data.draw(
        st.lists(st.lists(calls_strategy, min_size=1, max_size=6), min_size=1, max_size=4),
        label="batches",
    )
    max_attempts = data.draw(st.integers(1, 4), label="max_attempts")

    clock = Clock()
    record: list[tuple[str, str]] = []
    health = HealthRegistry(names, cooldown=1.0, clock=clock)
    metrics = GatewayMetrics()
    breaker_settings = BreakerSettings(
        consecutive_failures=2, min_requests=3, cooldown=0.5, half_open_probes=1, close_after=1
    )
    runtime = RoutingRuntime(
        breakers={name: CircuitBreaker(breaker_settings, clock=clock) for name in names},
        load=LoadTracker(clock=clock),
        provisioned=ProvisionedCapacity(provisioned, clock=clock) if provisioned else None,
    )
    planner = Planner(
        world.routes,
        world.facts,
        world.tenants,
        health,
        breakers=runtime.breakers,
        load=runtime.load,
        rng=random.Random(0),
    )
    pipeline = Pipeline(
        authenticator=NoAuthentication(),
        planner=planner,
        deployments={
            name: Deployed(ScriptedUpstream(name, scripts[name], record), DeploymentTags())
            for name in names
        },
        health=health,
        metrics=metrics,
        max_attempts=max_attempts,
        runtime=runtime,
    )

    for number, batch in enumerate(batches):
        record.clear()
        results = asyncio.run(run_batch(pipeline, batch, number))
        for index, (call, result) in enumerate(zip(batch, results, strict=True)):
            request_id = f"r{number}-{index}"
            called = [name for rid, name in record if rid == request_id]
            eligible = world.eligible(call.tenant, call.alias)
            outside = set(called) - set(eligible)
            assert not outside, (call, called, eligible, world.policy(call.tenant))
            assert len(called) == len(set(called)), called  # never the same one twice
            assert len(called) <= max_attempts, called
            if not eligible:
                assert isinstance(result, ApiError), result
                assert result.code == "no_deployment_within_policy", result
                assert not called
            elif isinstance(result, RequestContext):
                assert called and result.deployment == called[-1], (called, result.deployment)
                named = {reason.split(":", 1)[0] for reason in result.fallback_reasons}
                assert named <= set(eligible), (result.fallback_reasons, eligible)
            else:
                assert isinstance(result, ApiError), result
        clock.now += 0.4  # breakers cool down, passive failures expire, PT windows slide


def test_the_reference_agrees_on_the_documented_examples() -> None:
    """Anchors for the oracle itself (docs/configuration.md, ``tenants``)."""
    lgpd = DataPolicy(allowed_regions=("sa-east-1",))
    us_east = DataPolicy(allowed_regions=("us-east-1",))
    anywhere = DataPolicy(allowed_regions=("*",))
    vpc = DataPolicy(vpc_only=True)
    us_profile = Boundary(("us-east-1", "us-east-2", "us-west-1", "us-west-2"), in_vpc=False)
    global_profile = Boundary(("*",), in_vpc=False)
    untagged_vllm = Boundary((), in_vpc=True)
    sp_vllm = Boundary(("sa-east-1",), in_vpc=True)
    cases = [
        (lgpd, sp_vllm, True),
        (lgpd, us_profile, False),
        (us_east, us_profile, False),  # a us. profile may also run in us-west-2
        (lgpd, global_profile, False),
        (anywhere, global_profile, True),
        (lgpd, untagged_vllm, False),  # unknown region: never inside a region policy
        (vpc, untagged_vllm, True),
        (vpc, us_profile, False),
        (DataPolicy(allowed_regions=()), sp_vllm, False),
    ]
    for policy, boundary, expected in cases:
        assert allowed_by_reference(policy, boundary) is expected, (policy, boundary)
        assert permitted(policy, boundary) is expected, (policy, boundary)
