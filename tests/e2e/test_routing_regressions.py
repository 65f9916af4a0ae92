"""Routing regressions: breaker slots, PT estimates, saturation and fail-back hysteresis.

Each began as a reproducer of a defect found while proving issue 4.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import openai

from tests.conftest import NEVER_OPEN_BREAKER, Gateway, ServerPool, poll_until
from tests.e2e.bedrock_fixtures import HAIKU_US
from tests.e2e.routing_fixtures import (
    MESSAGES,
    bedrock_requests,
    gateway_metric,
    start_vllm,
    until,
    vllm_deployment,
)
from tests.e2e.test_routing_faults import (  # noqa: F401
    FaultStack,
    nodes,
    pt_then_on_demand,
    stack,
    vllm_then_bedrock,
)


def send(gw: Gateway, **body: object) -> tuple[int, str, str]:
    result = gw.post("chat/completions", {"model": "chat", "messages": MESSAGES, **body})
    return (
        result.status,
        result.headers.get("x-fulcrum-deployment", ""),
        result.headers.get("x-fulcrum-fallback", ""),
    )


def test_half_open_probe_slot_is_freed_when_the_client_goes_away(
    stack: FaultStack,  # noqa: F811
    gateway: Callable[..., Gateway],
) -> None:
    breaker = {
        "consecutive_failures": 2,
        "cooldown": 0.5,
        "half_open_probes": 1,
        "close_after": 1,
    }
    gw = gateway(vllm_then_bedrock(stack, {"breaker": breaker}, interval=5.0))
    stack.a.faults(error_rate=1.0, error_status=503)
    for _ in range(2):
        assert send(gw, max_tokens=4)[1] == "bedrock"
    opened = time.monotonic()
    assert gateway_metric(gw, "fulcrum_circuit_state", deployment="vllm") == 2
    # vLLM recovers, but answers slowly; the cool-down ends.
    stack.a.reset()
    stack.a.faults(added_latency_ms=1500)
    poll_until(lambda: time.monotonic() >= opened + 0.5, 2, what="cool-down")
    # The half-open probe request's client gives up after 0.3 s (the gateway cancels it).
    impatient = gw.client(timeout=0.3)
    with contextlib.suppress(openai.APITimeoutError):
        impatient.chat.completions.create(model="chat", messages=MESSAGES)  # type: ignore[arg-type]
    stack.a.reset()  # vLLM is fast and healthy again
    # Expected: another probe is let through and, succeeding, closes the circuit.
    served = [send(gw, max_tokens=4) for _ in range(3)]
    poll_until(
        lambda: send(gw, max_tokens=4)[1] == "vllm",
        5,
        what=f"vLLM served again (first three: {served}, circuit "
        f"{gateway_metric(gw, 'fulcrum_circuit_state', deployment='vllm')})",
    )


def test_pt_requests_without_max_tokens_spill_before_bedrock_throttles(
    stack: FaultStack,  # noqa: F811
    gateway: Callable[..., Gateway],
) -> None:
    gw = gateway(pt_then_on_demand(stack))
    results = []
    for _ in range(4):
        result = gw.post("chat/completions", {"model": "haiku", "messages": MESSAGES})
        assert result.status == 200
        results.append(result.headers.get("x-fulcrum-fallback", ""))
    errors = stack.bedrock.stats()["errors"]
    # Expected: the gateway passes PT over itself (provisioned_full) when a request cannot fit
    # in the capacity as Bedrock counts it (input + the model's max output when max_tokens is
    # not given), so Bedrock never has to throttle.
    assert "ThrottlingException" not in errors, (errors, results, bedrock_requests(stack.bedrock))


def test_saturation_fail_back_goes_through_hysteresis(
    stack: FaultStack,  # noqa: F811
    gateway: Callable[..., Gateway],
    server_pool: ServerPool,
) -> None:
    busy = start_vllm(server_pool, "emu-busy", "--max-num-seqs", "1", latency=True)
    gw = gateway(
        {
            "server": {"host": "127.0.0.1"},
            "deployments": {
                "busy": vllm_deployment(busy, interval=0.2, max_waiting=2),
                "idle": vllm_deployment(stack.b, interval=0.2),
            },
            "models": {"chat": ["busy", "idle"]},
            "routing": {"breaker": NEVER_OPEN_BREAKER, "recover_after": 3, "min_hold": 5.0},
            "auth": [{"key": "${FULCRUM_TEST_KEY}", "tenant": "acme"}],
        }
    )

    async def scenario() -> list[str]:
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
            for _ in range(5)
        ]
        try:
            await until(
                lambda: (
                    gateway_metric(gw, "fulcrum_upstream_waiting_requests", deployment="busy") >= 4
                ),
                10,
                "saturated",
            )
            saturated = [(await asyncio.to_thread(send, gw, max_tokens=4))[1] for _ in range(3)]
            assert saturated == ["idle"] * 3
        finally:
            for task in long_ones:
                task.cancel()
            await asyncio.gather(*long_ones, return_exceptions=True)
            await direct.close()
        await until(
            lambda: gateway_metric(gw, "fulcrum_upstream_waiting_requests", deployment="busy") == 0,
            5,
            "drained",
        )
        # Drained a moment ago: hysteresis (recover_after 3, min_hold 5 s) should hold it back.
        return [send(gw, max_tokens=4)[1] for _ in range(5)]

    after = asyncio.run(scenario())
    assert after == ["idle"] * 5, after


def test_a_last_resort_success_does_not_bypass_fail_back_hysteresis(
    stack: FaultStack,  # noqa: F811
    gateway: Callable[..., Gateway],
) -> None:
    gw = gateway(
        vllm_then_bedrock(
            stack, {"breaker": NEVER_OPEN_BREAKER, "recover_after": 3, "min_hold": 30.0}
        )
    )
    stack.a.faults(not_ready=True)
    poll_until(lambda: gateway_metric(gw, "fulcrum_deployment_healthy", deployment="vllm") == 0, 5)
    stack.a.reset()  # ready again, but held back for min_hold (30 s)
    assert [send(gw, max_tokens=4)[1] for _ in range(3)] == ["bedrock"] * 3
    # Bedrock fails once: the demoted vLLM is tried last and answers.
    stack.bedrock.set_faults(
        error_rate=1.0, error_type="ServiceUnavailableException", models=[HAIKU_US]
    )
    assert send(gw, max_tokens=4)[1] == "vllm"
    stack.bedrock.reset_faults()
    # Expected: still held back (30 s since it was last seen cold) → Bedrock first.
    after = [send(gw, max_tokens=4)[1] for _ in range(5)]
    assert after == ["bedrock"] * 5, after
