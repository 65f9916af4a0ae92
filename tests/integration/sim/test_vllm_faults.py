"""Run-time faults through the admin API, observed by real clients."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from http.client import HTTPConnection, HTTPException

import aiohttp
import openai
import pytest

from tests.integration.sim.conftest import MODEL, start_sim
from tests.integration.sim.helpers import Sim, http, sse_events, wait_for

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _set(sim: Sim, **faults: object) -> dict[str, object]:
    assert sim.admin_url is not None
    reply = http("POST", f"{sim.admin_url}/admin/faults", faults)
    assert reply.status == 200, reply.body
    result = reply.json()
    assert isinstance(result, dict)
    return result


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_admin_api_reports_and_resets_the_fault_set(faulty: Sim) -> None:
    assert faulty.admin_url is not None
    current = _set(faulty, error_rate=0.25, seed=3)
    assert (current["error_rate"], current["seed"]) == (0.25, 3)
    assert http("GET", f"{faulty.admin_url}/admin/faults").json() == current
    # the admin routes are also served on the main port
    assert http("GET", f"{faulty.url}/admin/faults").json() == current
    reset = http("DELETE", f"{faulty.admin_url}/admin/faults").json()
    assert reset["error_rate"] == 0.0
    bad = http("POST", f"{faulty.admin_url}/admin/faults", {"error_rate": 3})
    assert bad.status == 400
    assert "error_rate" in bad.json()["error"]["message"]


def test_error_rate_one_returns_the_configured_status(faulty: Sim) -> None:
    _set(faulty, error_rate=1.0, error_status=503, error_message="overloaded")
    with (
        openai.OpenAI(base_url=f"{faulty.url}/v1", api_key="x", max_retries=0) as client,
        pytest.raises(openai.InternalServerError) as info,
    ):
        client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert info.value.status_code == 503
    assert info.value.body == {
        "message": "overloaded",
        "type": "ServiceUnavailableError",
        "param": None,
        "code": 503,
    }
    http("DELETE", f"{faulty.admin_url}/admin/faults")
    assert http("POST", f"{faulty.url}/v1/chat/completions", CHAT).status == 200


def test_partial_error_rate_is_reproducible_with_a_seed(faulty: Sim) -> None:
    def pattern() -> list[int]:
        _set(faulty, error_rate=0.5, seed=11, error_status=500)
        return [
            http("POST", f"{faulty.url}/v1/embeddings", {"input": "x"}).status for _ in range(20)
        ]

    first = pattern()
    assert set(first) == {200, 500}
    assert pattern() == first


def test_refuse_connections_is_a_real_refusal_until_lifted(faulty: Sim) -> None:
    port = faulty.server.port
    kept = HTTPConnection("127.0.0.1", port, timeout=5)
    kept.request("GET", "/health")
    assert kept.getresponse().read() == b""  # a pooled keep-alive connection exists

    _set(faulty, refuse_connections=True)
    assert _refused(port)
    with pytest.raises((HTTPException, OSError)):
        kept.request("GET", "/health")  # the open connection was closed too
        kept.getresponse()
    kept.close()

    assert faulty.admin_url is not None
    assert http("DELETE", f"{faulty.admin_url}/admin/faults").status == 200
    wait_for(lambda: not _refused(port), what="the main port to listen again")
    assert http("GET", f"{faulty.url}/health").status == 200


async def test_cut_stream_closes_without_done(faulty: Sim) -> None:
    _set(faulty, cut_stream_after_chunks=3)
    body = {**CHAT, "max_tokens": 10, "stream": True}
    received = b""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{faulty.url}/v1/chat/completions", json=body) as response,
    ):
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in response.content.iter_any():
                received += chunk
    events = sse_events(received)
    assert len(events) == 3
    assert "[DONE]" not in events


def test_not_ready_answers_503_until_cleared(faulty: Sim) -> None:
    _set(faulty, not_ready=True)
    assert http("GET", f"{faulty.url}/health").status == 503
    reply = http("POST", f"{faulty.url}/v1/chat/completions", CHAT)
    assert reply.status == 503
    assert reply.json()["error"]["code"] == 503
    http("DELETE", f"{faulty.admin_url}/admin/faults")
    assert http("GET", f"{faulty.url}/health").status == 200


def test_added_latency_delays_inference(faulty: Sim) -> None:
    _set(faulty, added_latency_ms=300)
    start = time.monotonic()
    assert http("POST", f"{faulty.url}/v1/embeddings", {"input": "x"}).status == 200
    assert time.monotonic() - start >= 0.3


@pytest.fixture(scope="module")
def single_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    sim = start_sim(tmp_path_factory, "--no-latency", admin=False)
    try:
        yield sim
    finally:
        sim.server.stop()


def test_refuse_connections_needs_an_admin_port(single_port: Sim) -> None:
    reply = http("POST", f"{single_port.url}/admin/faults", {"refuse_connections": True})
    assert reply.status == 400
    assert "--admin-port" in reply.json()["error"]["message"]
    assert http("GET", f"{single_port.url}/health").status == 200
