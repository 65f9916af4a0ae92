"""One shared stack for the end-to-end tests: emulators + one gateway, started once a session.

Deployments of the shared gateway (each emulator is its own process, so faults injected into
one never disturb the tests that use another):

- ``vllm-a``: the main emulator, no latency, ``--max-model-len 1024`` (aliases ``llama`` and,
  behind a dead deployment, ``fallback``).
- ``vllm-slow``: a no-latency emulator whose faults add latency; ``ttft`` timeout 0.3 s and
  ``total`` 1.5 s (alias ``slow``).
- ``vllm-faulty``: a no-latency emulator whose faults cut streams or fail requests while its
  ``/health`` stays good (aliases ``faulty`` and, before ``vllm-a``, ``flaky``).
- ``vllm-paced``: an emulator with its realistic token latency, for long streams (alias
  ``paced``).
- ``dead``: a free port nobody listens on (aliases ``unreachable`` and ``fallback``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import (
    Emulator,
    Gateway,
    ServerPool,
    deployment,
    poll_until,
    static_auth,
)
from tests.support.servers import free_port

#: Small enough that a few thousand words exceed it (upstream 400), large enough for the rest.
MAIN_MAX_MODEL_LEN = 1024
#: The shared gateway's request body limit (the 413 test sends more than this).
MAX_BODY_BYTES = 256 * 1024
#: The ``ttft`` and ``total`` timeouts of the ``slow`` deployment.
SLOW_TTFT = 0.3
SLOW_TOTAL = 1.5


@dataclass
class Stack:
    gateway: Gateway
    main: Emulator
    slow: Emulator
    faulty: Emulator
    paced: Emulator
    dead_url: str


@pytest.fixture(scope="session")
def stack(session_servers: ServerPool) -> Iterator[Stack]:
    main, slow, faulty, paced = session_servers.emulators(
        ("upstream-main", ("--no-latency", "--max-num-seqs", "512"), MAIN_MAX_MODEL_LEN),
        ("upstream-slow", ("--no-latency",), None),
        ("upstream-faulty", ("--no-latency",), None),
        ("upstream-paced", (), None),
    )
    dead_url = f"http://127.0.0.1:{free_port()}/v1"
    config = {
        "server": {"host": "127.0.0.1", "max_body_bytes": MAX_BODY_BYTES},
        "deployments": {
            "vllm-a": deployment(
                main,
                tags={
                    "region": "sa-east-1",
                    "self_hosted": True,
                    "cost_per_1k_input": 0.0001,
                    "cost_per_1k_output": 0.0002,
                },
            ),
            "vllm-slow": deployment(slow, ttft=SLOW_TTFT, total=SLOW_TOTAL),
            "vllm-faulty": deployment(faulty),
            "vllm-paced": deployment(paced),
            "dead": deployment(dead_url, "nobody", connect=1.0),
        },
        "models": {
            "llama": ["vllm-a"],
            "fallback": ["dead", "vllm-a"],
            "unreachable": ["dead"],
            "slow": ["vllm-slow"],
            "faulty": ["vllm-faulty"],
            "flaky": ["vllm-faulty", "vllm-a"],
            "paced": ["vllm-paced"],
        },
        "auth": static_auth(),
    }
    gateway = session_servers.gateway(config)
    yield Stack(gateway, main, slow, faulty, paced, dead_url)


@pytest.fixture
def gw(stack: Stack) -> Gateway:
    return stack.gateway


@pytest.fixture
def slow_emulator(stack: Stack) -> Iterator[Emulator]:
    """The ``vllm-slow`` emulator, its faults reset after the test."""
    try:
        yield stack.slow
    finally:
        stack.slow.reset_faults()


@pytest.fixture
def faulty_emulator(stack: Stack) -> Iterator[Emulator]:
    """The ``vllm-faulty`` emulator, its faults reset after the test."""
    try:
        yield stack.faulty
    finally:
        stack.faulty.reset_faults()


def wait_idle(emulator: Emulator, timeout: float = 10.0) -> None:
    """Poll until the emulator runs no request (so one test's tail never leaks into another)."""
    poll_until(lambda: emulator.requests_running() == 0, timeout, what="emulator idle")


# The Bedrock stack (``tests/e2e/bedrock_fixtures.py``), registered here so that every test
# module shares one session-scoped set of processes.
from tests.e2e.bedrock_fixtures import bedrock_stack, faulty_bedrock  # noqa: E402, F401
