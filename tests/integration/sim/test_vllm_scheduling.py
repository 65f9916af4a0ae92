"""Continuous batching as a gateway sees it: queueing, disconnects, pacing, KV usage."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.integration.sim.conftest import MODEL
from tests.integration.sim.helpers import Sim, gauge, success_count

LONG_CHAT = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Tell me a long story."}],
    "max_tokens": 200,
    "ignore_eos": True,
}


async def _poll(check: object, timeout: float = 10.0) -> None:
    """Poll a sync predicate from async code (off the loop) until it holds."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_sixteen_requests_on_four_slots_queue_twelve_then_drain_on_disconnect(
    slow_vllm: Sim,
) -> None:
    url = slow_vllm.url
    aborted_before = success_count(url, "abort")
    async with aiohttp.ClientSession() as session:

        async def call() -> None:
            async with session.post(f"{url}/v1/chat/completions", json=LONG_CHAT) as response:
                await response.read()

        tasks = [asyncio.create_task(call()) for _ in range(16)]
        try:
            await _poll(
                lambda: (
                    gauge(url, "vllm:num_requests_waiting") == 12
                    and gauge(url, "vllm:num_requests_running") == 4
                )
            )
            assert 0 < gauge(url, "vllm:kv_cache_usage_perc") <= 1
        finally:
            for task in tasks:
                task.cancel()  # closes every connection: 4 running and 12 queued requests
            await asyncio.gather(*tasks, return_exceptions=True)
    await _poll(
        lambda: (
            gauge(url, "vllm:num_requests_running") == 0
            and gauge(url, "vllm:num_requests_waiting") == 0
        )
    )
    assert gauge(url, "vllm:kv_cache_usage_perc") == 0
    assert success_count(url, "abort") - aborted_before == 16


async def test_client_disconnect_mid_stream_frees_the_sequence(slow_vllm: Sim) -> None:
    url = slow_vllm.url
    aborted_before = success_count(url, "abort")
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/chat/completions", json={**LONG_CHAT, "stream": True}) as response,
    ):
        assert response.status == 200
        events = 0
        async for line in response.content:
            if line.startswith(b"data: "):
                events += 1
            if events == 3:
                break
        assert gauge(url, "vllm:num_requests_running") == 1
        response.close()  # drop the connection mid-stream
    await _poll(lambda: gauge(url, "vllm:num_requests_running") == 0)
    assert success_count(url, "abort") - aborted_before == 1


async def test_tokens_are_paced_by_the_inter_token_latency(slow_vllm: Sim) -> None:
    body = {**LONG_CHAT, "max_tokens": 6, "stream": True}
    stamps: list[float] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{slow_vllm.url}/v1/chat/completions", json=body) as response,
    ):
        async for line in response.content:
            if line.startswith(b"data: {") and b'"content":"' in line and b"role" not in line:
                stamps.append(time.monotonic())
    assert len(stamps) == 6
    # 5 gaps of 50 ms each (one sequence running); allow timer slack but not zero delay
    assert stamps[-1] - stamps[0] >= 5 * 0.050 * 0.9
