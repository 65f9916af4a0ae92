"""Micro-benchmark of the prompt cache stage: what a hit costs, memory vs. Redis.

Run with ``.venv/bin/python -m bench.cache`` (options: ``--iterations``, ``--redis-url``).
For a typical chat request (a system prompt and a question, ~1.5 KB; an answer of ~1 KB) it
times, one call at a time in this process:

- ``key``: cache key derivation alone (normalise + canonical JSON + SHA-256);
- ``decide``: policy and key, what every request pays when the cache is on;
- ``hit (memory)`` / ``hit (redis)``: decide + lookup + decode of a stored answer;
- ``serve body`` / ``serve stream``: the hit turned into a fresh non-streaming body, or into
  replayed SSE events with a usage chunk;
- ``store (memory)`` / ``store (redis)``: encode + write of a non-streaming answer;
- ``record stream``: folding a 250-chunk streamed answer into a body, as a miss that is
  stored pays it (spread over the stream).

Redis keys live under a unique prefix deleted at the end; the database is never flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench.stats import Summary
from fulcrum.auth.principal import Principal
from fulcrum.cache.keys import cache_key
from fulcrum.cache.memory import MemoryCache
from fulcrum.cache.prompt_cache import PromptCacheStage
from fulcrum.cache.redis_cache import RedisCache
from fulcrum.config import RedisConfig
from fulcrum.providers.base import Usage
from fulcrum.schema.openai import Endpoint, InferenceRequest, parse_request
from fulcrum.telemetry.metrics import GatewayMetrics

PRINCIPAL = Principal(tenant="acme", subject="bench")
SYSTEM = "You are a precise assistant for an internal knowledge base. " * 20
REQUEST = parse_request(
    Endpoint.CHAT,
    orjson.dumps(
        {
            "model": "bench-model",
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Summarise the on-call policy in three sentences."},
            ],
            "temperature": 0,
            "max_tokens": 256,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ),
)
ANSWER_TEXT = "The on-call rotation changes weekly and covers nights and weekends. " * 15
USAGE = Usage(input_tokens=310, output_tokens=250)
ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER_TEXT},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 310, "completion_tokens": 250, "total_tokens": 560},
    }
)


def stream_events(pieces: int = 250) -> list[bytes]:
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "bench-model"}
    words = ANSWER_TEXT.split(" ")
    step = max(1, len(words) // pieces)
    chunks: list[dict[str, Any]] = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    ]
    for start in range(0, len(words), step):
        text = " ".join(words[start : start + step]) + " "
        chunks.append({**head, "choices": [{"index": 0, "delta": {"content": text}}]})
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events = [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks]
    return [*events, b"data: [DONE]\n\n"]


def timed_sync(call: Callable[[], object], iterations: int) -> Summary:
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return Summary.of(samples)


async def timed(call: Callable[[], Awaitable[object]], iterations: int) -> Summary:
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return Summary.of(samples)


async def hit(stage: PromptCacheStage, request: InferenceRequest) -> None:
    answer = await stage.lookup(stage.decide(PRINCIPAL, request, None))
    if answer is None:
        raise SystemExit("expected a hit: the benchmark's setup is broken")


async def measure_stage(
    name: str, stage: PromptCacheStage, iterations: int
) -> list[tuple[str, Summary]]:
    ticket = stage.decide(PRINCIPAL, REQUEST, None)
    store = await timed(lambda: stage.store(ticket, ANSWER, USAGE, "vllm-a"), iterations)
    lookup = await timed(lambda: hit(stage, REQUEST), iterations)
    return [(f"store ({name})", store), (f"hit ({name})", lookup)]


async def run(iterations: int, redis_url: str | None) -> list[tuple[str, Summary]]:
    rows: list[tuple[str, Summary]] = []
    rows.append(("key", timed_sync(lambda: cache_key("acme", REQUEST), iterations)))
    memory = PromptCacheStage(MemoryCache(64 << 20, 3600, 1 << 20), GatewayMetrics())
    rows.append(("decide", timed_sync(lambda: memory.decide(PRINCIPAL, REQUEST, None), iterations)))
    rows += await measure_stage("memory", memory, iterations)
    answer = await memory.lookup(memory.decide(PRINCIPAL, REQUEST, None))
    assert answer is not None
    rows.append(("serve body", timed_sync(answer.body, iterations)))
    rows.append(("serve stream", timed_sync(lambda: answer.events(True), iterations)))
    events = stream_events()

    def record() -> None:
        recorder = memory.recorder(memory.decide(PRINCIPAL, REQUEST, None))
        assert recorder is not None
        for event in events:
            recorder.feed(event)
        if recorder.finish(USAGE) is None:
            raise SystemExit("the recorded stream did not assemble")

    rows.append((f"record stream ({len(events)} events)", timed_sync(record, iterations // 10)))
    if redis_url:
        prefix = f"fulcrum-bench:{uuid.uuid4().hex[:8]}:"
        metrics = GatewayMetrics()
        backend = RedisCache.from_config(
            RedisConfig(url=redis_url, key_prefix=prefix), 3600, 1 << 20, metrics
        )
        stage = PromptCacheStage(backend, metrics)
        try:
            rows += await measure_stage("redis", stage, iterations)
            if not backend.available:
                raise SystemExit(f"Redis at {redis_url} did not answer; figures are invalid")
        finally:
            await backend.client.delete(*[k async for k in backend.client.scan_iter(f"{prefix}*")])
            await stage.aclose()
    return rows


def report(rows: list[tuple[str, Summary]]) -> str:
    lines = ["| operation | p50 | p99 | mean |", "|---|---|---|---|"]
    for name, summary in rows:
        lines.append(
            f"| {name} | {summary.p50 * 1e6:.1f} µs | {summary.p99 * 1e6:.1f} µs "
            f"| {summary.mean * 1e6:.1f} µs |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="'' to skip")
    args = parser.parse_args(argv)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # the gateway runs on uvloop where available; so does this
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        rows = runner.run(run(args.iterations, args.redis_url or None))
    print(f"typical chat request: {len(orjson.dumps(REQUEST.body))} B, answer {len(ANSWER)} B")
    print(report(rows))


if __name__ == "__main__":
    main()
