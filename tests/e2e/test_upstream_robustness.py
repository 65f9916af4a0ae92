"""Upstreams and moments that misbehave: compression, bad bodies, passive health, SIGTERM.

Each test states the behaviour a production user expects (they began as reproducers of
defects found in review). Real processes only: the gateway, the vLLM emulator,
and a small misbehaving OpenAI-compatible upstream (``tests/support/misbehaving_upstream.py``).
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from tests.conftest import (
    Gateway,
    ServerPool,
    deployment,
    http_json,
    http_request,
    metric_value,
    poll_until,
)
from tests.support.servers import free_port, start_server

UPSTREAM_SCRIPT = Path(__file__).parents[1] / "support" / "misbehaving_upstream.py"
MESSAGES = [{"role": "user", "content": "hi"}]


def _misbehaving_gateway(pool: ServerPool, mode: str) -> Gateway:
    port = free_port()
    upstream = start_server(
        [sys.executable, str(UPSTREAM_SCRIPT), str(port), mode],
        port,
        pool.root / "logs",
        "/health",
    )
    pool.servers.append(upstream)
    return pool.gateway(
        {
            "deployments": {"raw": deployment(f"{upstream.url}/v1", "raw-model")},
            "models": {"raw": ["raw"]},
            "auth": "none",
        },
        api_key=None,
    )


# -- compression: the gateway asks for identity, so bytes pass through readable ---------------


def test_gzip_upstream_non_streaming_reaches_the_client_decoded(server_pool: ServerPool) -> None:
    gateway = _misbehaving_gateway(server_pool, "gzip")
    completion = gateway.client().chat.completions.create(model="raw", messages=MESSAGES)
    assert completion.choices[0].message.content == "hello"
    assert completion.usage is not None and completion.usage.prompt_tokens == 3


def test_gzip_upstream_stream_reaches_the_client(server_pool: ServerPool) -> None:
    gateway = _misbehaving_gateway(server_pool, "gzip")
    chunks = list(
        gateway.client().chat.completions.create(model="raw", messages=MESSAGES, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello"


# -- a failure after the SSE headers keeps the HTTP framing valid -----------------------------


def test_stream_failure_after_headers_keeps_the_http_framing_valid(
    server_pool: ServerPool,
) -> None:
    gateway = _misbehaving_gateway(server_pool, "bad_usage")
    connection = http.client.HTTPConnection("127.0.0.1", gateway.server.port, timeout=10)
    try:
        connection.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps({"model": "raw", "messages": MESSAGES, "stream": True}),
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        # A failure after the headers must end the chunked body cleanly (an error event),
        # never write a second HTTP response into it.
        body = response.read()
    finally:
        connection.close()
    assert response.status == 200
    assert b"data:" in body
    # The request is accounted like every other (status label of its outcome).
    samples = gateway.metrics()
    assert metric_value(samples, "fulcrum_requests_total", deployment="raw") >= 1


# -- a 200 whose body is not JSON is a 502, not a relayed 'success' --------------------------


def test_non_json_200_from_upstream_is_a_502(server_pool: ServerPool) -> None:
    gateway = _misbehaving_gateway(server_pool, "non_json")
    result = http_json(
        "POST", f"{gateway.base_url}/chat/completions", {"model": "raw", "messages": MESSAGES}
    )
    assert result.status == 502, (result.status, result.body[:200])


# -- passive failures expire, so deployments without active probes recover ------------------


def test_deployment_without_health_checks_recovers_after_one_timeout(
    server_pool: ServerPool,
) -> None:
    emulator = server_pool.emulator("emu-model", "--no-latency")
    gateway = server_pool.gateway(
        {
            "deployments": {
                "only": deployment(emulator, ttft=0.5, total=0.5, health_check={"enabled": False})
            },
            "models": {"llama": ["only"]},
            "auth": "none",
        },
        api_key=None,
    )
    assert http_request("GET", f"{gateway.url}/readyz").status == 200
    emulator.set_faults(added_latency_ms=2000)
    with pytest.raises(openai.APIStatusError) as caught:
        gateway.client().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=2)
    assert caught.value.status_code == 504
    emulator.reset_faults()
    # The upstream is fine again: the passive mark must expire, or /readyz would stay 503
    # for good (a pod that is not ready gets no requests to prove itself with).
    poll_until(
        lambda: http_request("GET", f"{gateway.url}/readyz").status == 200,
        timeout=15,
        what="readiness recovers once the upstream recovered",
    )


def test_primary_without_health_checks_is_used_again_after_it_recovers(
    server_pool: ServerPool,
) -> None:
    primary, secondary = server_pool.emulators(
        ("emu-model", ("--no-latency",), None), ("emu-model", ("--no-latency",), None)
    )
    no_probe = {"health_check": {"enabled": False}}
    gateway = server_pool.gateway(
        {
            "deployments": {
                "primary": deployment(primary, ttft=0.5, total=0.5, **no_probe),
                "secondary": deployment(secondary, ttft=0.5, total=0.5, **no_probe),
            },
            "models": {"llama": ["primary", "secondary"]},
            "auth": "none",
        },
        api_key=None,
    )
    client = gateway.client()
    primary.set_faults(added_latency_ms=2000)
    client.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=2)  # falls back
    primary.reset_faults()

    def served_by_primary() -> bool:
        raw = client.chat.completions.with_raw_response.create(
            model="llama", messages=MESSAGES, max_tokens=2
        )
        return raw.headers["x-fulcrum-deployment"] == "primary"

    # Without expiry every later request would go to the secondary for the life of the process.
    poll_until(served_by_primary, timeout=15, interval=0.5, what="primary used again")


# -- server.shutdown_timeout bounds how long SIGTERM waits for in-flight streams -------------


def test_sigterm_honours_shutdown_timeout(server_pool: ServerPool) -> None:
    paced = server_pool.emulator("paced-model")  # realistic pace: ~15 ms per token
    gateway = server_pool.gateway(
        {
            "server": {"shutdown_timeout": 1},
            "deployments": {"paced": deployment(paced)},
            "models": {"paced": ["paced"]},
            "auth": "none",
        },
        api_key=None,
    )
    client = gateway.client(timeout=60)
    stream = client.chat.completions.create(
        model="paced",
        messages=MESSAGES,
        max_tokens=1500,  # ~25 s of streaming
        stream=True,
        extra_body={"ignore_eos": True},
    )
    next(iter(stream))
    process: subprocess.Popen[bytes] = gateway.server.process
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("the gateway ignored shutdown_timeout=1 and kept running after SIGTERM")
    finally:
        stream.close()
    assert time.monotonic() - started < 1 + 5
    assert process.returncode == 0
