"""Routing under faults, end to end: failover, fail-back with hysteresis, PT spill, breakers.

Real processes: two no-latency vLLM emulators with access logs and admin ports, and one
Bedrock emulator (``--no-auth``) whose catalogue gives the Provisioned Throughput ARN a
capacity of 2,000 tokens per minute. Each test starts its own gateway. Load is bounded
(a request count and a time limit) and driven by ``openai.AsyncOpenAI``; where requests
went is read from the emulators' own records (access-log lines, ``/admin/stats``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import openai
import pytest
import yaml

from tests.conftest import (
    NEVER_OPEN_BREAKER,
    Gateway,
    ServerPool,
    http_request,
    poll_until,
    static_auth,
)
from tests.e2e.bedrock_fixtures import (
    HAIKU,
    HAIKU_US,
    PT_ARN,
    BedrockEmulator,
    start_bedrock_emulator,
)
from tests.e2e.helpers import assert_error_body
from tests.e2e.routing_fixtures import (
    MESSAGES,
    Access,
    Load,
    Outcome,
    VllmNode,
    bedrock_requests,
    bedrock_route,
    gateway_metric,
    key_of,
    start_vllm,
    summary,
    tenant_auth,
    until,
    vllm_deployment,
)

#: Bedrock's capacity for the PT ARN in this module's emulator, and the gateway's view of it.
PT_TPM = 2000
PROBE_INTERVAL = 0.2


@dataclass
class FaultStack:
    a: VllmNode
    b: VllmNode
    bedrock: BedrockEmulator

    def reset(self) -> None:
        self.a.reset()
        self.b.reset()
        self.bedrock.reset_faults()

    def bedrock_count(self, model: str) -> int:
        return bedrock_requests(self.bedrock).get(model, 0)


@pytest.fixture(scope="module")
def nodes(module_servers: ServerPool) -> Iterator[FaultStack]:
    catalog = module_servers.root / "bedrock-catalog.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "models": [{"id": HAIKU, "inference_profiles": ["us", "eu", "global"]}],
                "provisioned": [{"arn": PT_ARN, "model": HAIKU, "tokens_per_minute": PT_TPM}],
            }
        )
    )
    with ThreadPoolExecutor(max_workers=3) as pool:
        a = pool.submit(start_vllm, module_servers, "emu-a")
        b = pool.submit(start_vllm, module_servers, "emu-b")
        bedrock = pool.submit(
            start_bedrock_emulator,
            module_servers,
            "--no-latency",
            "--no-auth",
            "--catalog",
            str(catalog),
        )
        stack = FaultStack(a.result(), b.result(), bedrock.result())
    yield stack


@pytest.fixture
def stack(nodes: FaultStack) -> Iterator[FaultStack]:
    nodes.reset()
    nodes.bedrock.admin("DELETE", "/admin/state")  # counters and quota windows
    try:
        yield nodes
    finally:
        nodes.reset()


def vllm_then_bedrock(stack: FaultStack, routing: dict[str, Any], **vllm: Any) -> dict[str, Any]:
    """``chat`` = [vllm (emulator A), bedrock (a ``us.`` profile)] with ``routing``."""
    return {
        "server": {"host": "127.0.0.1"},
        "deployments": {
            "vllm": vllm_deployment(stack.a, **{"interval": PROBE_INTERVAL, **vllm}),
            "bedrock": bedrock_route(stack.bedrock, HAIKU_US),
        },
        "models": {"chat": ["vllm", "bedrock"]},
        "routing": routing,
        "auth": static_auth(),
    }


def index_of(lines: list[Access], start: int, match: Callable[[Access], bool]) -> int:
    """Index of the first line at or after ``start`` that matches (``len(lines)`` if none)."""
    return next((i for i in range(start, len(lines)) if match(lines[i])), len(lines))


def no_client_failures(outcomes: list[Outcome]) -> None:
    failed = [o for o in outcomes if o.failed_before_start]
    assert not failed, (summary(outcomes), failed[:3])


# --------------------------------------------------------------------------------------------
# vLLM stops / goes cold under load
# --------------------------------------------------------------------------------------------


def test_vllm_stopped_mid_load_moves_traffic_to_bedrock_and_back_after_hysteresis(
    stack: FaultStack, gateway: Callable[..., Gateway]
) -> None:
    recover_after, min_hold = 2, 0.5
    gw = gateway(
        vllm_then_bedrock(
            stack,
            {"breaker": NEVER_OPEN_BREAKER, "recover_after": recover_after, "min_hold": min_hold},
        )
    )
    mark = stack.a.mark()
    bedrock_before = stack.bedrock_count(HAIKU_US)
    times: dict[str, float] = {}

    async def scenario() -> list[Outcome]:
        client = gw.async_client()
        load = Load(client, "chat", workers=8, max_requests=3000, max_seconds=40, stream_every=3)
        load.start()
        try:
            await until(lambda: load.served("vllm") >= 30, 10, "vLLM serves")
            await asyncio.to_thread(stack.a.faults, refuse_connections=True)
            times["refused"] = time.monotonic()
            at_refusal = await asyncio.to_thread(stack.bedrock_count, HAIKU_US)
            await until(
                lambda: stack.bedrock_count(HAIKU_US) >= at_refusal + 60, 15, "Bedrock takes over"
            )
            times["clear"] = time.monotonic()
            await asyncio.to_thread(stack.a.reset)
            await until(lambda: load.served("vllm", after=times["clear"]) >= 20, 15, "vLLM is back")
        finally:
            outcomes = await load.stop()
            await client.close()
        return outcomes

    outcomes = asyncio.run(scenario())

    # No client saw a failure before its stream started (mid-stream cuts are allowed only
    # where content had already been delivered).
    no_client_failures(outcomes)
    served_vllm = sum(1 for o in outcomes if o.deployment == "vllm")
    served_bedrock = sum(1 for o in outcomes if o.deployment == "bedrock")
    assert served_vllm + served_bedrock == len(outcomes), summary(outcomes)

    # By the emulators' own records: Bedrock answered exactly what the gateway says it did.
    poll_until(
        lambda: stack.bedrock_count(HAIKU_US) - bedrock_before == served_bedrock,
        5,
        what="Bedrock's count matches",
    )
    lines = stack.a.access(mark)
    logged_ok = sum(1 for line in lines if line.chat and line.status == 200)
    assert 0 <= logged_ok - served_vllm <= 8, (logged_ok, served_vllm)

    # While refused, nothing was served by vLLM; after the fault cleared, not before a run of
    # good probes: two (recover_after) at least 0.2 s apart, plus min_hold since the last bad.
    early = [
        o
        for o in outcomes
        if o.deployment == "vllm"
        and o.started >= times["refused"]
        and o.ended < times["clear"] + PROBE_INTERVAL * (recover_after - 1)
    ]
    assert not early, early[:3]
    refused_at = index_of(lines, 0, lambda line: line.admin and line.method == "POST")
    cleared_at = index_of(lines, refused_at + 1, lambda line: line.admin)
    back_at = index_of(lines, cleared_at + 1, lambda line: line.chat and line.status == 200)
    assert back_at < len(lines), "vLLM never served again"
    assert not [line for line in lines[refused_at + 1 : cleared_at] if line.chat]
    good_probes = [line for line in lines[refused_at + 1 : back_at] if line.health]
    assert len(good_probes) >= recover_after, lines[refused_at:back_at]
    assert all(line.status == 200 for line in good_probes)

    # Prometheus: first choices moved to Bedrock and back, attempts by outcome.
    assert gateway_metric(gw, "fulcrum_routing_decisions_total", deployment="bedrock") > 0
    assert gateway_metric(gw, "fulcrum_routing_decisions_total", deployment="vllm") > 0
    ok_bedrock = gateway_metric(
        gw, "fulcrum_upstream_attempts_total", deployment="bedrock", outcome="ok"
    )
    assert ok_bedrock == served_bedrock


def test_cold_start_sends_traffic_to_bedrock_and_back_after_recover_after_probes(
    stack: FaultStack, gateway: Callable[..., Gateway]
) -> None:
    recover_after = 3
    gw = gateway(
        vllm_then_bedrock(
            stack, {"breaker": NEVER_OPEN_BREAKER, "recover_after": recover_after, "min_hold": 0}
        )
    )
    mark = stack.a.mark()
    times: dict[str, float] = {}

    async def scenario() -> list[Outcome]:
        client = gw.async_client()
        load = Load(client, "chat", workers=8, max_requests=3000, max_seconds=40, stream_every=3)
        load.start()
        try:
            await until(lambda: load.served("vllm") >= 20, 10, "vLLM serves")
            await asyncio.to_thread(stack.a.faults, not_ready=True)
            times["cold"] = time.monotonic()
            await until(
                lambda: (
                    load.served("bedrock", after=times["cold"]) >= 40
                    and sum(1 for x in stack.a.access(mark) if x.health and x.status == 503) >= 2
                ),
                15,
                "Bedrock serves, and two probes have seen the cold start",
            )
            times["clear"] = time.monotonic()
            await asyncio.to_thread(stack.a.reset)
            await until(lambda: load.served("vllm", after=times["clear"]) >= 20, 15, "vLLM is back")
        finally:
            outcomes = await load.stop()
            await client.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    no_client_failures(outcomes)  # the cold deployment's 503s all failed over

    lines = stack.a.access(mark)
    cold_at = index_of(lines, 0, lambda line: line.admin)
    cleared_at = index_of(lines, cold_at + 1, lambda line: line.admin)
    cold = lines[cold_at + 1 : cleared_at]
    bad_probes = [i for i, line in enumerate(cold) if line.health and line.status == 503]
    assert len(bad_probes) >= 2, cold
    hit_cold = [line for line in cold if line.chat]
    assert all(line.status == 503 for line in hit_cold)
    # Each request that reached the cold vLLM (before a probe noticed) was served by Bedrock.
    failed_over = [o for o in outcomes if "vllm:http_503" in o.fallback]
    assert len(failed_over) == len(hit_cold), (len(failed_over), len(hit_cold))
    assert all(o.status == 200 and o.deployment == "bedrock" for o in failed_over)
    # Once the probe had noticed (by its second 503), no request went to vLLM at all.
    assert not [line for line in cold[bad_probes[1] :] if line.chat], cold[bad_probes[1] :]

    # Fail-back only after recover_after good probes in a row (min_hold is 0 here)...
    after = lines[cleared_at + 1 :]
    back_at = index_of(after, 0, lambda line: line.chat)
    assert back_at < len(after), "vLLM never served again"
    assert after[back_at].status == 200
    probes = [line for line in after[:back_at] if line.health]
    assert len(probes) >= recover_after and all(p.status == 200 for p in probes), probes
    # ...which are at least two probe intervals apart: nothing served by vLLM earlier.
    early = [
        o
        for o in outcomes
        if o.deployment == "vllm"
        and o.started >= times["cold"]
        and o.ended < times["clear"] + PROBE_INTERVAL * (recover_after - 1)
    ]
    assert not early, early[:3]
    assert gateway_metric(gw, "fulcrum_deployment_healthy", deployment="vllm") == 1


def test_requests_that_reach_a_cold_vllm_fail_over_before_the_probe_notices(
    stack: FaultStack, gateway: Callable[..., Gateway]
) -> None:
    """With the next probe far away, every request meets the cold vLLM first: no client error."""
    gw = gateway(vllm_then_bedrock(stack, {"breaker": NEVER_OPEN_BREAKER}, interval=60.0))
    poll_until(
        lambda: gateway_metric(gw, "fulcrum_deployment_healthy", deployment="vllm") == 1,
        5,
        what="first probe",
    )
    stack.a.faults(not_ready=True)
    mark, bedrock_before = stack.a.mark(), stack.bedrock_count(HAIKU_US)

    async def scenario() -> list[Outcome]:
        client = gw.async_client()
        try:
            return (
                await Load(client, "chat", workers=8, max_requests=24, stream_every=2)
                .start()
                .finish()
            )
        finally:
            await client.close()

    outcomes = asyncio.run(scenario())
    assert len(outcomes) == 24
    no_client_failures(outcomes)
    assert all(o.deployment == "bedrock" and o.fallback == "vllm:http_503" for o in outcomes)
    poll_until(lambda: stack.a.chats(mark, status=503) == 24, 5, what="24 cold hits on record")
    assert stack.a.chats(mark) == 24
    assert stack.bedrock_count(HAIKU_US) - bedrock_before == 24


# --------------------------------------------------------------------------------------------
# Provisioned Throughput
# --------------------------------------------------------------------------------------------


def pt_then_on_demand(stack: FaultStack) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1"},
        "deployments": {
            "pt": bedrock_route(stack.bedrock, PT_ARN, provisioned_tpm=PT_TPM),
            "on-demand": bedrock_route(stack.bedrock, HAIKU),
        },
        "models": {"haiku": ["pt", "on-demand"]},
        "routing": {"breaker": NEVER_OPEN_BREAKER},
        "auth": static_auth(),
    }


def test_throttling_storm_on_provisioned_throughput_spills_to_on_demand(
    stack: FaultStack, gateway: Callable[..., Gateway]
) -> None:
    gw = gateway(pt_then_on_demand(stack))
    stack.bedrock.set_faults(error_rate=1.0, error_type="ThrottlingException", models=[PT_ARN])

    async def scenario() -> list[Outcome]:
        client = gw.async_client()
        try:
            return (
                await Load(client, "haiku", workers=8, max_requests=64, stream_every=3)
                .start()
                .finish()
            )
        finally:
            await client.close()

    outcomes = asyncio.run(scenario())
    assert len(outcomes) == 64
    no_client_failures(outcomes)
    assert all(o.deployment == "on-demand" for o in outcomes), summary(outcomes)
    assert all(o.fallback == "pt:ThrottlingException" for o in outcomes)
    stats = stack.bedrock.stats()
    assert bedrock_requests(stack.bedrock) == {PT_ARN: 64, HAIKU: 64}
    assert stats["errors"] == {"ThrottlingException": 64}
    throttled = gateway_metric(
        gw, "fulcrum_upstream_attempts_total", deployment="pt", outcome="ThrottlingException"
    )
    assert throttled == 64
    ok = gateway_metric(gw, "fulcrum_upstream_attempts_total", deployment="on-demand", outcome="ok")
    assert ok == 64


def test_provisioned_capacity_spills_to_on_demand_before_bedrock_throttles(
    stack: FaultStack, gateway: Callable[..., Gateway]
) -> None:
    """2,000 tokens/min on both sides: the gateway passes PT over before Bedrock must refuse."""
    gw = gateway(pt_then_on_demand(stack))

    async def scenario() -> list[Outcome]:
        client = gw.async_client()
        try:
            load = Load(client, "haiku", workers=8, max_requests=64, max_tokens=200)
            return await load.start().finish()
        finally:
            await client.close()

    outcomes = asyncio.run(scenario())
    assert len(outcomes) == 64
    no_client_failures(outcomes)
    on_pt = [o for o in outcomes if o.deployment == "pt"]
    spilled = [o for o in outcomes if o.deployment == "on-demand"]
    assert len(on_pt) >= 5 and len(spilled) >= 5, summary(outcomes)
    assert all(o.fallback == "pt:provisioned_full" for o in spilled), spilled[:3]
    assert all(o.fallback == "" for o in on_pt)
    # Bedrock never had to throttle the PT model, and served exactly what the gateway says.
    stats = stack.bedrock.stats()
    assert "ThrottlingException" not in stats["errors"], stats["errors"]
    assert bedrock_requests(stack.bedrock) == {PT_ARN: len(on_pt), HAIKU: len(spilled)}
    assert stats["quotas"][PT_ARN]["tokens"] <= PT_TPM, stats["quotas"]
    # The PT tokens in use stayed under the gateway's headroom (0.95 of the capacity).
    used = sum(o.total_tokens or 0 for o in on_pt)
    assert used <= 0.95 * PT_TPM, used
    utilization = gateway_metric(gw, "fulcrum_provisioned_utilization", deployment="pt")
    assert 0.5 < utilization <= 1.0, utilization
    assert abs(utilization - used / PT_TPM) < 0.05, (utilization, used)
    passed_over = gateway_metric(
        gw, "fulcrum_upstream_attempts_total", deployment="pt", outcome="provisioned_full"
    )
    assert passed_over == len(spilled)


# --------------------------------------------------------------------------------------------
# Circuit breaker
# --------------------------------------------------------------------------------------------


def test_circuit_breaker_opens_half_opens_and_closes(
    stack: FaultStack, gateway: Callable[..., Gateway]
) -> None:
    cooldown = 1.0
    breaker = {
        "consecutive_failures": 3,
        "cooldown": cooldown,
        "half_open_probes": 1,
        "close_after": 1,
    }
    gw = gateway(vllm_then_bedrock(stack, {"breaker": breaker}, interval=5.0))
    mark = stack.a.mark()

    def send() -> tuple[int, str, str]:
        result = gw.post(
            "chat/completions", {"model": "chat", "messages": MESSAGES, "max_tokens": 4}
        )
        assert result.status == 200, result.body[:300]
        return (
            result.status,
            result.headers["x-fulcrum-deployment"],
            result.headers.get("x-fulcrum-fallback", ""),
        )

    def circuit() -> float:
        return gateway_metric(gw, "fulcrum_circuit_state", deployment="vllm")

    assert circuit() == 0
    # Three failures in a row open the circuit; the clients never notice (Bedrock answers).
    stack.a.faults(error_rate=1.0, error_status=503)
    for _ in range(3):
        assert send()[1:] == ("bedrock", "vllm:http_503")
    opened = time.monotonic()
    assert circuit() == 2
    assert stack.a.chats(mark) == 3
    # Open: vLLM gets nothing during the cool-down.
    while_open = [send() for _ in range(5)]
    if time.monotonic() < opened + cooldown * 0.9:
        assert stack.a.chats(mark) == 3
    assert all(deployment == "bedrock" for _, deployment, _ in while_open)

    # After the cool-down it half-opens: the one probe fails (fault still on) → open again.
    poll_until(lambda: time.monotonic() >= opened + cooldown, cooldown + 1, what="cool-down")
    assert send()[1:] == ("bedrock", "vllm:http_503")
    reopened = time.monotonic()
    assert circuit() == 2
    assert stack.a.chats(mark) == 4

    # Fault cleared; the next probe is slow, so the half-open state can be seen, and the
    # requests meanwhile are kept off vLLM (one probe at a time).
    stack.a.reset()
    stack.a.faults(added_latency_ms=1500)
    poll_until(lambda: time.monotonic() >= reopened + cooldown, cooldown + 1, what="cool-down")
    with ThreadPoolExecutor(max_workers=1) as pool:
        probe = pool.submit(send)
        poll_until(lambda: circuit() == 1, 1.2, what="half-open while the probe runs")
        meanwhile = [send() for _ in range(3)]
        assert all(d == "bedrock" and f == "vllm:circuit_open" for _, d, f in meanwhile), meanwhile
        assert probe.result()[1:] == ("vllm", "")
    assert circuit() == 0  # one success closes it (close_after: 1)
    stack.a.reset()
    closed = [send() for _ in range(3)]
    assert all(deployment == "vllm" for _, deployment, _ in closed)
    poll_until(lambda: stack.a.chats(mark) == 8, 5, what="vLLM's record: 4 failed, 4 served")
    assert stack.a.chats(mark, status=503) == 4

    assert (
        gateway_metric(gw, "fulcrum_upstream_attempts_total", deployment="vllm", outcome="http_503")
        == 4
    )
    assert (
        gateway_metric(gw, "fulcrum_upstream_attempts_total", deployment="vllm", outcome="ok") == 4
    )


# --------------------------------------------------------------------------------------------
# Strategies and workload classes
# --------------------------------------------------------------------------------------------


def test_weighted_split_end_to_end(stack: FaultStack, gateway: Callable[..., Gateway]) -> None:
    gw = gateway(
        {
            "server": {"host": "127.0.0.1"},
            "deployments": {"a": vllm_deployment(stack.a), "b": vllm_deployment(stack.b)},
            "models": {
                "split": {
                    "deployments": ["a", "b"],
                    "strategy": "weighted",
                    "weights": {"a": 3, "b": 1},
                }
            },
            "auth": static_auth(),
        }
    )
    marks = stack.a.mark(), stack.b.mark()
    total = 800

    async def scenario() -> list[Outcome]:
        client = gw.async_client()
        try:
            return (
                await Load(client, "split", workers=8, max_requests=total, max_tokens=2)
                .start()
                .finish()
            )
        finally:
            await client.close()

    outcomes = asyncio.run(scenario())
    assert len(outcomes) == total
    no_client_failures(outcomes)
    counts = poll_until(
        lambda: (c := (stack.a.chats(marks[0]), stack.b.chats(marks[1])))[0] + c[1] >= total and c,
        5,
        what="every request on the emulators' records",
    )
    assert sum(counts) == total, counts
    assert counts[0] == sum(1 for o in outcomes if o.deployment == "a")
    share = counts[0] / total
    assert abs(share - 0.75) <= 0.05, counts


def test_least_busy_avoids_the_replica_with_a_queue(
    stack: FaultStack, gateway: Callable[..., Gateway], server_pool: ServerPool
) -> None:
    # A paced emulator running one sequence at a time, kept busy by long generations sent to
    # it directly: one runs, eight wait (vllm:num_requests_waiting): more than the four
    # clients below can ever have in flight on the idle one.
    busy = start_vllm(server_pool, "emu-busy", "--max-num-seqs", "1", latency=True)
    gw = gateway(
        {
            "server": {"host": "127.0.0.1"},
            "deployments": {
                # listed first: priority order alone would send everything to it
                "busy": vllm_deployment(busy, interval=PROBE_INTERVAL, ttft=2.0, total=2.0),
                "idle": vllm_deployment(stack.b, interval=PROBE_INTERVAL),
            },
            "models": {"lb": {"deployments": ["busy", "idle"], "strategy": "least_busy"}},
            "auth": static_auth(),
        }
    )
    mark = stack.b.mark()

    async def scenario() -> list[Outcome]:
        direct = openai.AsyncOpenAI(
            api_key="unused", base_url=busy.base_url, max_retries=0, timeout=120
        )
        long_ones = [
            asyncio.ensure_future(
                direct.chat.completions.create(
                    model="emu-busy",
                    messages=MESSAGES,  # type: ignore[arg-type]
                    max_tokens=3000,
                    extra_body={"ignore_eos": True},
                )
            )
            for _ in range(9)
        ]
        client = gw.async_client()
        try:
            await until(lambda: busy.waiting() >= 8, 10, "the busy emulator's queue")
            await until(
                lambda: (
                    gateway_metric(gw, "fulcrum_upstream_waiting_requests", deployment="busy") >= 8
                ),
                10,
                "the gateway's scrape of that queue",
            )
            return await Load(client, "lb", workers=4, max_requests=40).start().finish()
        finally:
            for task in long_ones:
                task.cancel()
            await asyncio.gather(*long_ones, return_exceptions=True)
            await client.close()
            await direct.close()

    outcomes = asyncio.run(scenario())
    assert len(outcomes) == 40
    no_client_failures(outcomes)
    on_busy = sum(1 for o in outcomes if o.deployment == "busy")
    on_idle = sum(1 for o in outcomes if o.deployment == "idle")
    assert on_busy < on_idle and on_busy <= 4, summary(outcomes)
    poll_until(lambda: stack.b.chats(mark) == on_idle, 5, what="the idle emulator's record")
    tried_busy = gateway_metric(gw, "fulcrum_upstream_attempts_total", deployment="busy")
    assert tried_busy <= 4, tried_busy


def test_workload_header_picks_the_preferred_deployments_and_is_echoed(
    stack: FaultStack, gateway: Callable[..., Gateway]
) -> None:
    gw = gateway(
        {
            "server": {"host": "127.0.0.1"},
            "deployments": {
                "vllm": vllm_deployment(stack.a),
                "bedrock": bedrock_route(stack.bedrock, HAIKU_US),
            },
            "models": {
                "wl": {
                    "deployments": ["vllm", "bedrock"],
                    "workloads": {"batch": ["vllm"], "interactive": ["bedrock"]},
                    "default_workload": "interactive",
                }
            },
            "tenants": {"nightly": {"default_workload": "batch"}},
            "auth": [*static_auth(), *tenant_auth("nightly")],
        }
    )
    mark, bedrock_before = stack.a.mark(), stack.bedrock_count(HAIKU_US)
    acme = gw.api_key
    nightly = key_of("nightly")
    cases = [  # (key, header, served by, workload)
        (acme, "batch", "vllm", "batch"),
        (acme, "BATCH", "vllm", "batch"),
        (acme, "interactive", "bedrock", "interactive"),
        (acme, None, "bedrock", "interactive"),  # the route's default
        (acme, "", "bedrock", "interactive"),  # empty: as if absent
        (nightly, None, "vllm", "batch"),  # the tenant's default
        (nightly, "interactive", "bedrock", "interactive"),  # the header wins
    ]
    expected = {"vllm": 0, "bedrock": 0}
    for key, header, deployment, workload in cases:
        for stream in (False, True):
            headers = {"Authorization": f"Bearer {key}"}
            if header is not None:
                headers["x-fulcrum-workload"] = header
            result = gw.post(
                "chat/completions",
                {"model": "wl", "messages": MESSAGES, "max_tokens": 4, "stream": stream},
                headers=headers,
            )
            assert result.status == 200, (header, result.body[:300])
            assert result.headers["x-fulcrum-deployment"] == deployment, (key, header)
            assert result.headers["x-fulcrum-workload"] == workload, (key, header)
            expected[deployment] += 1
    bad = gw.post(
        "chat/completions",
        {"model": "wl", "messages": MESSAGES},
        headers={"x-fulcrum-workload": "overnight"},
    )
    assert bad.status == 400
    assert_error_body(bad.body, code="invalid_workload", param="x-fulcrum-workload")
    # By the upstreams' own records (the invalid request reached neither).
    poll_until(lambda: stack.a.chats(mark) == expected["vllm"], 5, what="vLLM's record")
    assert stack.bedrock_count(HAIKU_US) - bedrock_before == expected["bedrock"]
    decisions = {
        (deployment, workload): gateway_metric(
            gw,
            "fulcrum_routing_decisions_total",
            model="wl",
            deployment=deployment,
            workload=workload,
        )
        for deployment, workload in [("vllm", "batch"), ("bedrock", "interactive")]
    }
    assert decisions == {("vllm", "batch"): 6.0, ("bedrock", "interactive"): 8.0}
    assert http_request("GET", f"{gw.url}/metrics").status == 200
