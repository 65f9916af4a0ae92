"""Streams under load, under client disconnects and under upstream failures."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import openai

from tests.conftest import Emulator, http_json, poll_until
from tests.e2e.conftest import Stack, wait_idle
from tests.e2e.helpers import assert_error_body, sse_events, summarize_stream

CONCURRENT_STREAMS = 200
DISTINCT_PROMPTS = 10


async def test_200_concurrent_streams_complete_intact(stack: Stack) -> None:
    prompts = [f"Tell me fact number {i} about the Andes." for i in range(DISTINCT_PROMPTS)]

    async def collect(client: openai.AsyncOpenAI, model: str, prompt: str) -> tuple[str, Any]:
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=24,
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
        summary = summarize_stream(chunks)
        return summary.content.get(0, ""), summary.finish_reasons.get(0)

    direct = stack.main.async_client()
    expected = {p: await collect(direct, stack.main.model, p) for p in prompts}
    assert all(content for content, _ in expected.values())
    await direct.close()

    client = stack.gateway.async_client()
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(
                    collect(client, "llama", prompts[i % DISTINCT_PROMPTS])
                    for i in range(CONCURRENT_STREAMS)
                )
            ),
            timeout=60,
        )
    finally:
        await client.close()

    assert len(results) == CONCURRENT_STREAMS
    mismatches = [
        (i, got, expected[prompts[i % DISTINCT_PROMPTS]])
        for i, got in enumerate(results)
        if got != expected[prompts[i % DISTINCT_PROMPTS]]
    ]
    assert not mismatches, mismatches[:3]
    assert all(finish is not None for _, finish in results)


def test_client_disconnect_frees_the_upstream_request(stack: Stack) -> None:
    paced = stack.paced
    wait_idle(paced)
    with stack.gateway.client(timeout=30).chat.completions.with_streaming_response.create(
        model="paced",
        messages=[{"role": "user", "content": "Write a very long story."}],
        max_tokens=4000,
        stream=True,
        # vLLM's extension: generate all 4000 tokens (about a minute at the emulator's pace).
        extra_body={"ignore_eos": True},
    ) as response:
        assert response.status_code == 200
        stream = response.parse()
        received = 0
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
            if received >= 3:
                break
        assert received >= 3
        running_during = paced.requests_running()
        stream.close()
    assert running_during >= 1
    # Generating 4000 tokens at the emulator's pace takes about a minute: only an aborted
    # upstream request is gone within the deadline.
    poll_until(lambda: paced.requests_running() == 0, 10.0, what="upstream request freed")


def test_mid_stream_failure_raises_in_the_sdk(stack: Stack, faulty_emulator: Emulator) -> None:
    faulty_emulator.set_faults(cut_stream_after_chunks=3)
    client = stack.gateway.client(timeout=15)
    received: list[Any] = []
    started = time.monotonic()
    try:
        stream = client.chat.completions.create(
            model="faulty",
            messages=[{"role": "user", "content": "Count slowly to one hundred."}],
            max_tokens=200,
            stream=True,
        )
        for chunk in stream:
            received.append(chunk)
    except openai.APIError as exc:
        error = exc
    else:
        raise AssertionError(f"stream ended without an error after {len(received)} chunks")
    assert not isinstance(error, openai.APITimeoutError), "the client hung until its timeout"
    assert time.monotonic() - started < 10
    assert received, "the failure happened after the first byte, so chunks came first"
    assert error.message


def test_mid_stream_failure_ends_with_an_error_event(
    stack: Stack, faulty_emulator: Emulator
) -> None:
    faulty_emulator.set_faults(cut_stream_after_chunks=3)
    result = http_json(
        "POST",
        f"{stack.gateway.base_url}/chat/completions",
        {
            "model": "faulty",
            "messages": [{"role": "user", "content": "Count slowly to one hundred."}],
            "max_tokens": 200,
            "stream": True,
        },
        stack.gateway.auth_headers(),
        timeout=15,
    )
    assert result.status == 200
    assert result.headers["x-fulcrum-deployment"] == "vllm-faulty"
    events = [event for event in sse_events(result.body) if event != "[DONE]"]
    assert len(events) >= 2, events
    error_events = [e for e in events if json.loads(e).get("error") is not None]
    assert len(error_events) == 1, events
    # The error is the last event: nothing follows it.
    assert events[-1] == error_events[0]
    assert_error_body(json.loads(events[-1]), code=None)
    # Content arrived before the failure.
    assert any(json.loads(e).get("choices") for e in events[:-1])
