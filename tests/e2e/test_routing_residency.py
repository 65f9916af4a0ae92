"""Residency end to end: a policy-restricted tenant's requests reach only allowed deployments.

Real processes: three vLLM emulators (``sa-east-1`` inside the VPC, ``us-east-1`` outside it,
and one without a region tag) and one Bedrock emulator serving six deployments, each under a
model id of its own (a ``us.``/``eu.``/``global.`` inference profile, a Provisioned
Throughput ARN in ``us-east-1``, a foundation model and a foundation-model ARN in
``sa-east-1``). Tenants come from the API keys. Where requests went is read from the
emulators' own records (vLLM access logs, Bedrock ``/admin/stats``), never from the gateway's
headers alone — and it is checked while the allowed deployments are refusing connections, cold
or failing, which is when a weaker gateway would "helpfully" fall back across the boundary.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import NEVER_OPEN_BREAKER, Gateway, ServerPool, http_json, poll_until
from tests.e2e.bedrock_fixtures import (
    HAIKU_EU,
    HAIKU_GLOBAL,
    HAIKU_US,
    PT_ARN,
    SONNET,
    BedrockEmulator,
    start_bedrock_emulator,
)
from tests.e2e.helpers import assert_error_body, sse_events
from tests.e2e.routing_fixtures import (
    MESSAGES,
    Load,
    Outcome,
    VllmNode,
    bedrock_requests,
    bedrock_route,
    key_of,
    start_vllm,
    summary,
    tenant_auth,
    vllm_deployment,
)

LLAMA = "meta.llama3-1-8b-instruct-v1:0"
SONNET_SP_ARN = f"arn:aws:bedrock:sa-east-1::foundation-model/{SONNET}"
EU_REGIONS = [
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
]

#: Bedrock deployment → the model id it sends (each unique, so /admin/stats tells them apart;
#: none is the bare base model of another, so faults scoped with ``models`` hit only it).
BEDROCK_IDS = {
    "br-global": HAIKU_GLOBAL,
    "br-us": HAIKU_US,
    "br-eu": HAIKU_EU,
    "br-pt": PT_ARN,
    "br-sp": LLAMA,
    "br-sp-arn": SONNET_SP_ARN,
}
VLLM = ("vllm-us", "vllm-x", "vllm-sp")
ALL = ["vllm-us", "br-global", "br-us", "br-eu", "vllm-x", "br-pt", "vllm-sp", "br-sp", "br-sp-arn"]

#: Each tenant's policy, and the deployments it allows — written out by hand from the
#: configuration reference, not computed by the code under test.
POLICIES: dict[str, dict[str, Any]] = {
    "lgpd": {"allowed_regions": ["sa-east-1"]},
    "lgpd-vpc": {"allowed_regions": ["sa-east-1"], "vpc_only": True},
    "vpc": {"vpc_only": True},
    "us-east": {"allowed_regions": ["us-east-1"]},
    "us": {"allowed_regions": ["us-east-1", "us-east-2", "us-west-1", "us-west-2"]},
    "eu": {"allowed_regions": EU_REGIONS},
    "eu-west": {"allowed_regions": ["eu-west-1"]},
    "nowhere": {"allowed_regions": []},
    "anywhere": {"allowed_regions": ["*"]},
}
ELIGIBLE: dict[str, set[str]] = {
    "lgpd": {"vllm-sp", "br-sp", "br-sp-arn"},
    "lgpd-vpc": {"vllm-sp"},  # br-sp is in the region but outside the VPC
    "vpc": {"vllm-sp", "vllm-x"},  # the untagged vLLM is in the VPC; region does not matter
    "us-east": {"vllm-us", "br-pt"},  # br-us may also run in us-east-2, us-west-1/2
    "us": {"vllm-us", "br-us", "br-pt"},
    "eu": {"br-eu"},
    "eu-west": set(),  # br-eu may run in any EU region
    "nowhere": set(),
    "anywhere": set(ALL),  # "*" allows even the global profile
    "acme": set(ALL),  # no tenant entry: unrestricted
}
ALIASES: dict[str, Any] = {
    # Disallowed deployments first: a planner that ordered before filtering would pick them.
    "all": ALL,
    "all-weighted": {
        "deployments": ALL,
        "strategy": "weighted",
        "weights": {"vllm-us": 50, "br-global": 30, "br-us": 10, "vllm-sp": 1, "br-sp": 1},
    },
    "all-least-busy": {"deployments": ALL, "strategy": "least_busy"},
    "all-cost": {"deployments": ALL, "strategy": "cost"},
    "all-workload": {
        "deployments": ALL,
        "workloads": {
            "batch": ["vllm-x", "vllm-us", "vllm-sp"],
            "interactive": ["br-global", "br-us", "br-sp"],
        },
    },
    "sa": ["vllm-sp", "br-sp"],
    "us-pair": ["br-us", "vllm-us"],
}
COSTS = {  # the global profile is the cheapest: a cost strategy would love it
    "br-global": (0.00001, 0.00002),
    "br-us": (0.0002, 0.001),
    "br-eu": (0.0002, 0.001),
    "br-pt": (0.0001, 0.0005),
    "br-sp": (0.0003, 0.0015),
    "br-sp-arn": (0.003, 0.015),
}
REGIONS = {"br-sp": "sa-east-1", "br-sp-arn": "sa-east-1", "br-eu": "eu-west-1"}


def alias_members(alias: str) -> list[str]:
    spec = ALIASES[alias]
    return list(spec if isinstance(spec, list) else spec["deployments"])


def eligible(tenant: str, alias: str) -> set[str]:
    return ELIGIBLE[tenant] & set(alias_members(alias))


@dataclass
class ResidencyStack:
    gateway: Gateway
    vllm: dict[str, VllmNode]
    bedrock: BedrockEmulator

    def observe(self) -> dict[str, int]:
        """Requests each deployment's upstream has received so far, by its own records."""
        per_model = bedrock_requests(self.bedrock)
        counts = {name: per_model.get(model, 0) for name, model in BEDROCK_IDS.items()}
        counts.update({name: node.chats() for name, node in self.vllm.items()})
        return counts

    def reset(self) -> None:
        for node in self.vllm.values():
            node.reset()
        self.bedrock.reset_faults()

    def client(self, tenant: str) -> openai.AsyncOpenAI:
        return self.gateway.async_client(api_key=key_of(tenant), timeout=30.0)


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


@pytest.fixture(scope="module")
def residency(module_servers: ServerPool) -> Iterator[ResidencyStack]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        vllm_futures = {
            name: pool.submit(start_vllm, module_servers, f"emu-{name}") for name in VLLM
        }
        bedrock_future = pool.submit(
            start_bedrock_emulator, module_servers, "--no-latency", "--no-auth"
        )
        vllm = {name: future.result() for name, future in vllm_futures.items()}
        bedrock = bedrock_future.result()
    deployments: dict[str, Any] = {
        "vllm-sp": vllm_deployment(
            vllm["vllm-sp"], tags={"region": "sa-east-1", "self_hosted": True}
        ),
        "vllm-us": vllm_deployment(
            vllm["vllm-us"], tags={"region": "us-east-1", "self_hosted": True, "in_vpc": False}
        ),
        "vllm-x": vllm_deployment(vllm["vllm-x"], tags={"self_hosted": True}),
    }
    for name, model in BEDROCK_IDS.items():
        cost_in, cost_out = COSTS[name]
        deployments[name] = bedrock_route(
            bedrock,
            model,
            region=REGIONS.get(name, "us-east-1"),
            tags={"cost_per_1k_input": cost_in, "cost_per_1k_output": cost_out},
        )
    config = {
        "server": {"host": "127.0.0.1"},
        "deployments": deployments,
        "models": ALIASES,
        "tenants": {name: {"data_policy": policy} for name, policy in POLICIES.items()},
        "routing": {"max_attempts": 10, "breaker": NEVER_OPEN_BREAKER},
        "auth": tenant_auth(*ELIGIBLE),
    }
    gateway = module_servers.gateway(config)
    yield ResidencyStack(gateway, vllm, bedrock)


@pytest.fixture
def stack(residency: ResidencyStack) -> Iterator[ResidencyStack]:
    residency.reset()
    try:
        yield residency
    finally:
        residency.reset()


async def tenant_load(stack: ResidencyStack, tenant: str, alias: str, count: int) -> list[Outcome]:
    client = stack.client(tenant)
    try:
        load = Load(client, alias, workers=8, max_requests=count, max_seconds=20, stream_every=4)
        outcomes = await load.start().finish()
    finally:
        await client.close()
    assert len(outcomes) == count, summary(outcomes)
    return outcomes


def settle(stack: ResidencyStack, before: dict[str, int], minimum: int) -> dict[str, int]:
    """The upstreams' counts once at least ``minimum`` new requests are on record."""

    def enough() -> dict[str, int] | None:
        moved = delta(before, stack.observe())
        return moved if sum(moved.values()) >= minimum else None

    return dict(poll_until(enough, 5, what=f"{minimum} requests on the upstreams' records"))


def named_in_fallback(outcome: Outcome) -> set[str]:
    return {reason.split(":", 1)[0] for reason in outcome.fallback.split(",") if reason}


def test_restricted_tenants_never_cross_the_boundary_under_load_and_faults(
    stack: ResidencyStack,
) -> None:
    """Allowed deployments refuse, go cold, then fail: the others still see nothing."""
    start = stack.observe()

    async def phase(tenant: str, count: int, expected: dict[str, int]) -> list[Outcome]:
        """``count`` requests of ``tenant``; ``expected`` is where the upstreams saw them."""
        before = await asyncio.to_thread(stack.observe)
        outcomes = await tenant_load(stack, tenant, "all", count)
        moved = await asyncio.to_thread(settle, stack, before, sum(expected.values()))
        for outcome in outcomes:
            assert named_in_fallback(outcome) <= ELIGIBLE[tenant], (tenant, outcome)
            if outcome.status == 200:
                assert outcome.deployment in ELIGIBLE[tenant], (tenant, outcome)
        assert set(moved) <= ELIGIBLE[tenant], (tenant, moved)
        assert moved == expected, (tenant, moved, summary(outcomes))
        return outcomes

    async def scenario() -> None:
        # 1. Healthy: each tenant is served by its first eligible deployment in the alias order.
        outcomes = await phase("lgpd", 40, {"vllm-sp": 40})
        assert all(o.status == 200 and o.deployment == "vllm-sp" for o in outcomes)
        outcomes = await phase("vpc", 24, {"vllm-x": 24})
        assert all(o.status == 200 and o.deployment == "vllm-x" for o in outcomes)

        # 2. The in-region vLLM refuses connections: LGPD traffic moves to Bedrock in sa-east-1,
        #    with no client-visible failure; not to the healthy vLLM or profiles elsewhere.
        await asyncio.to_thread(stack.vllm["vllm-sp"].faults, refuse_connections=True)
        outcomes = await phase("lgpd", 40, {"br-sp": 40})
        assert not [o for o in outcomes if o.failed_before_start], summary(outcomes)
        assert {o.deployment for o in outcomes} == {"br-sp"}

        # 3. VPC-only tenant with both VPC deployments down (refused, cold): a clear error,
        #    not a silent call to a healthy deployment outside the VPC.
        await asyncio.to_thread(stack.vllm["vllm-x"].faults, not_ready=True)
        # Each request tried the cold one once (its 503s are on record); the refused one has
        # no record of anything.
        outcomes = await phase("vpc", 24, {"vllm-x": 24})
        assert all(o.status in (502, 503) for o in outcomes), summary(outcomes)
        assert all(o.error and "Traceback" not in o.error for o in outcomes)

        # 4. Everything in sa-east-1 fails: the LGPD tenant gets an error, never the US/EU/global.
        await asyncio.to_thread(
            stack.bedrock.set_faults,
            error_rate=1.0,
            error_type="ServiceUnavailableException",
            models=[LLAMA, SONNET_SP_ARN],
        )
        outcomes = await phase("lgpd", 40, {"br-sp": 40, "br-sp-arn": 40})
        assert all(o.status in (502, 503) for o in outcomes), summary(outcomes)
        # The answer is the last eligible deployment's error (the refused vLLM, demoted, is
        # tried last) and names it.
        for outcome in outcomes:
            assert outcome.error and any(f"`{name}`" in outcome.error for name in ELIGIBLE["lgpd"])

    asyncio.run(scenario())

    # Over the whole test, by the upstreams' own records: nothing outside sa-east-1/the VPC.
    total = delta(start, stack.observe())
    assert set(total) <= {"vllm-sp", "vllm-x", "br-sp", "br-sp-arn"}, total


def test_no_eligible_deployment_is_a_503_that_names_the_policy(stack: ResidencyStack) -> None:
    before = stack.observe()
    cases = [
        ("eu-west", "all", "allowed_regions=eu-west-1"),
        ("nowhere", "all", "allowed_regions=(none)"),
        ("us-east", "sa", "allowed_regions=us-east-1"),
        ("lgpd-vpc", "us-pair", "vpc_only allowed_regions=sa-east-1"),
    ]
    for tenant, alias, description in cases:
        client = stack.gateway.client(api_key=key_of(tenant))
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model=alias, messages=MESSAGES)  # type: ignore[arg-type]
        assert info.value.status_code == 503
        error = assert_error_body(
            info.value.response.json(), code="no_deployment_within_policy", type_="policy_error"
        )
        assert description in error["message"], error
        assert f"`{tenant}`" in error["message"] and f"`{alias}`" in error["message"], error
        # Streaming requests are refused the same way, before any stream starts.
        raw = stack.gateway.post(
            "chat/completions",
            {"model": alias, "messages": MESSAGES, "stream": True},
            headers={"Authorization": f"Bearer {key_of(tenant)}"},
        )
        assert raw.status == 503, raw.body[:300]
        assert not sse_events(raw.body) or raw.body.startswith(b"{"), raw.body[:100]
        assert json.loads(raw.body)["error"]["code"] == "no_deployment_within_policy"
    assert delta(before, stack.observe()) == {}


# ---------------------------------------------------------------------------------------------
# Property: random tenant, alias, workload, stream and fault pattern, checked per request
# ---------------------------------------------------------------------------------------------

VLLM_FAULTS = {
    "error_503": {"error_rate": 1.0, "error_status": 503},
    "error_500": {"error_rate": 1.0, "error_status": 500},
    "not_ready": {"not_ready": True},
}
BEDROCK_ERRORS = [
    "ServiceUnavailableException",
    "ThrottlingException",
    "InternalServerException",
    "ModelNotReadyException",
]


class FaultState:
    """Applies a fault pattern to the emulators, touching only what changed."""

    def __init__(self, stack: ResidencyStack) -> None:
        self.stack = stack
        self.vllm: dict[str, str | None] = dict.fromkeys(VLLM)
        self.bedrock: tuple[frozenset[str], str] | None = None
        stack.reset()

    def apply(self, failing: frozenset[str], vllm_kind: str, bedrock_error: str) -> None:
        for name in VLLM:
            wanted = vllm_kind if name in failing else None
            if self.vllm[name] != wanted:
                node = self.stack.vllm[name]
                node.reset()
                if wanted is not None:
                    node.faults(**VLLM_FAULTS[wanted])
                self.vllm[name] = wanted
        models = frozenset(BEDROCK_IDS[name] for name in failing if name in BEDROCK_IDS)
        wanted_bedrock = (models, bedrock_error) if models else None
        if self.bedrock != wanted_bedrock:
            self.stack.bedrock.reset_faults()
            if models:
                self.stack.bedrock.set_faults(
                    error_rate=1.0, error_type=bedrock_error, models=sorted(models)
                )
            self.bedrock = wanted_bedrock


@pytest.fixture
def faults(stack: ResidencyStack) -> FaultState:
    return FaultState(stack)


@settings(
    max_examples=80,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    # Mostly tenants that have something eligible, so that fallbacks inside the policy happen.
    tenant=st.sampled_from([*sorted(ELIGIBLE), "lgpd", "vpc", "us", "us-east", "lgpd", "vpc"]),
    alias=st.sampled_from(sorted(ALIASES)),
    workload=st.sampled_from([None, "batch", "interactive"]),
    stream=st.booleans(),
    failing=st.frozensets(st.sampled_from(ALL), max_size=5),
    vllm_kind=st.sampled_from(sorted(VLLM_FAULTS)),
    bedrock_error=st.sampled_from(BEDROCK_ERRORS),
)
def test_property_requests_reach_only_allowed_deployments(
    stack: ResidencyStack,
    faults: FaultState,
    tenant: str,
    alias: str,
    workload: str | None,
    stream: bool,
    failing: frozenset[str],
    vllm_kind: str,
    bedrock_error: str,
) -> None:
    faults.apply(failing, vllm_kind, bedrock_error)
    allowed = eligible(tenant, alias)
    before = stack.observe()
    headers = {"Authorization": f"Bearer {key_of(tenant)}"}
    if workload is not None:
        headers["x-fulcrum-workload"] = workload
    result = http_json(
        "POST",
        f"{stack.gateway.base_url}/chat/completions",
        {"model": alias, "messages": MESSAGES, "max_tokens": 8, "stream": stream},
        headers,
    )
    attempts = int(result.headers.get("x-fulcrum-attempts", "0"))
    # Every attempt reaches an emulator (no fault here refuses connections): wait until all
    # of them are on the emulators' records, then look at where they went.
    moved = settle(stack, before, attempts) if attempts else delta(before, stack.observe())
    context = {"tenant": tenant, "alias": alias, "failing": sorted(failing), "moved": moved}
    event(f"HTTP {result.status} after {attempts} attempt(s)")
    assert set(moved) <= allowed, context  # the property
    assert all(n == 1 for n in moved.values()), context  # each tried at most once
    assert sum(moved.values()) == attempts, context
    if not allowed:
        assert result.status == 503, (context, result.body[:300])
        assert result.json()["error"]["code"] == "no_deployment_within_policy", context
        return
    healthy = allowed - failing
    if healthy:
        # max_attempts (10) covers every deployment: someone allowed and healthy answers.
        assert result.status == 200, (context, result.body[:300])
        assert result.headers["x-fulcrum-deployment"] in healthy, context
    else:
        assert result.status in (429, 500, 502, 503), (context, result.body[:300])
        assert set(moved) == allowed, context  # all of them were tried, and nothing else
