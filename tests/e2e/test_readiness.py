"""``/readyz`` follows the health of the deployments; ``/healthz`` is always 200."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import (
    NEVER_OPEN_BREAKER,
    Emulator,
    Gateway,
    ServerPool,
    deployment,
    http_request,
    poll_until,
    static_auth,
)
from tests.support.servers import free_port

#: Seconds between the gateway's active health checks in these tests.
INTERVAL = 0.5


@dataclass
class ReadyStack:
    emulator: Emulator
    gateway: Gateway
    dead_gateway: Gateway


@pytest.fixture(scope="module")
def ready_stack(module_servers: ServerPool) -> Iterator[ReadyStack]:
    (emulator,) = module_servers.emulators(("upstream-ready", ("--no-latency",), None))
    gateway = module_servers.gateway(
        {
            "deployments": {"only": deployment(emulator, interval=INTERVAL)},
            "models": {"llama": ["only"]},
            "auth": static_auth(),
            # readiness, not fail-back damping, is under test: recover after 2 good probes
            "routing": {"min_hold": 0, "breaker": NEVER_OPEN_BREAKER},
        }
    )
    dead_url = f"http://127.0.0.1:{free_port()}/v1"
    dead_gateway = module_servers.gateway(
        {
            "deployments": {"dead": deployment(dead_url, "nobody", connect=0.5, interval=INTERVAL)},
            "models": {"llama": ["dead"]},
            "auth": "none",
        },
        api_key=None,
    )
    try:
        yield ReadyStack(emulator, gateway, dead_gateway)
    finally:
        emulator.reset_faults()


def _ready_status(gateway: Gateway) -> int:
    return http_request("GET", f"{gateway.url}/readyz", timeout=5).status


def test_ready_with_a_live_deployment(ready_stack: ReadyStack) -> None:
    poll_until(lambda: _ready_status(ready_stack.gateway) == 200, 10, what="/readyz 200")


def test_not_ready_when_the_only_deployment_is_not_ready(ready_stack: ReadyStack) -> None:
    gateway, emulator = ready_stack.gateway, ready_stack.emulator
    poll_until(lambda: _ready_status(gateway) == 200, 10, what="/readyz 200 first")
    emulator.set_faults(not_ready=True)
    try:
        assert http_request("GET", f"{emulator.url}/health").status != 200
        poll_until(lambda: _ready_status(gateway) == 503, 10, what="/readyz 503")
        # Liveness does not depend on the upstreams.
        assert http_request("GET", f"{gateway.url}/healthz").status == 200
    finally:
        emulator.reset_faults()
    poll_until(lambda: _ready_status(gateway) == 200, 10, what="/readyz 200 after recovery")


def test_not_ready_when_no_deployment_is_reachable(ready_stack: ReadyStack) -> None:
    gateway = ready_stack.dead_gateway
    poll_until(lambda: _ready_status(gateway) == 503, 10, what="/readyz 503")
    result = http_request("GET", f"{gateway.url}/healthz")
    assert result.status == 200


def test_auth_none_needs_no_key(ready_stack: ReadyStack) -> None:
    """``auth: none`` serves without a key (the request reaches routing: 502, not 401)."""
    result = http_request(
        "POST",
        f"{ready_stack.dead_gateway.base_url}/chat/completions",
        b'{"model": "llama", "messages": [{"role": "user", "content": "hi"}]}',
        {"Content-Type": "application/json"},
    )
    assert result.status == 502, result.body
