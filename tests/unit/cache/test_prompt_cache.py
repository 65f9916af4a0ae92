"""The stage over the memory backend: decide, look up, store, replay, and never fail a request."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion

from fulcrum.cache.memory import MemoryCache
from fulcrum.cache.prompt_cache import PromptCacheStage, build_cache, storable
from fulcrum.config import CacheConfig, RedisConfig
from fulcrum.providers.base import Usage
from fulcrum.schema.openai import Endpoint
from fulcrum.telemetry.metrics import GatewayMetrics
from tests.unit.cache.common import chat, principal, request, sample, sdk_chat_chunks, sse

ANSWER: dict[str, Any] = {
    "id": "chatcmpl-upstream",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "qwen-small",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Jupiter."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22},
}
BODY = orjson.dumps(ANSWER)
USAGE = Usage(20, 2)


def stage(max_entry: int = 100_000) -> tuple[PromptCacheStage, GatewayMetrics]:
    metrics = GatewayMetrics()
    backend = MemoryCache(1_000_000, 60, max_entry)
    return PromptCacheStage(backend, metrics, clock=lambda: 1_767_225_600.0), metrics


def lookups(metrics: GatewayMetrics, result: str) -> float:
    return sample(metrics, "fulcrum_cache_lookups_total", result=result)


def stores(metrics: GatewayMetrics, result: str) -> float:
    return sample(metrics, "fulcrum_cache_stores_total", result=result)


async def test_a_miss_then_a_hit_with_a_fresh_id() -> None:
    cache, metrics = stage()
    acme = principal()
    first = cache.decide(acme, chat(), None)
    assert await cache.lookup(first) is None
    assert first.status == "miss"
    assert await cache.store(first, BODY, USAGE, "vllm-a")

    second = cache.decide(acme, chat(user="someone-else"), None)
    answer = await cache.lookup(second)
    assert answer is not None and second.status == "hit"
    assert (answer.usage, answer.deployment) == (USAGE, "vllm-a")
    served = orjson.loads(answer.completion().body)
    assert served["id"] != ANSWER["id"]
    assert {**served, "id": ANSWER["id"], "created": ANSWER["created"]} == ANSWER
    assert answer.completion().usage is None  # nothing spent upstream
    ChatCompletion.model_validate(served)
    assert (lookups(metrics, "miss"), lookups(metrics, "hit")) == (1, 1)
    assert stores(metrics, "stored") == 1


async def test_a_non_streaming_answer_serves_a_streaming_request() -> None:
    cache, _ = stage()
    ticket = cache.decide(principal(), chat(), None)
    await cache.store(ticket, BODY, USAGE, "vllm-a")
    streaming = chat(stream=True, stream_options={"include_usage": True})
    hit = cache.decide(principal(), streaming, None)
    answer = await cache.lookup(hit)
    assert answer is not None
    stream = answer.stream(streaming.client_wants_usage)
    written = [batch async for batch in stream]
    assert stream.completed and stream.usage is None
    assert [batch async for batch in stream] == []  # one replay per stream
    chunks = list(sdk_chat_chunks(written))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Jupiter."
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 22
    await stream.aclose()


async def test_a_streamed_answer_is_stored_and_serves_a_non_streaming_request() -> None:
    cache, metrics = stage()
    streaming = chat(stream=True)
    ticket = cache.decide(principal(), streaming, None)
    assert await cache.lookup(ticket) is None
    recorder = cache.recorder(ticket)
    assert recorder is not None
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "qwen-small"}
    events = sse(
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Jup"}}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "iter."}, "finish_reason": "stop"}]},
    )
    recorder.feed(b"".join(events))  # usage stripped: the client did not ask for it
    assert await cache.store_stream(ticket, recorder, USAGE, "bedrock-eu")

    answer = await cache.lookup(cache.decide(principal(), chat(), None))
    assert answer is not None and answer.deployment == "bedrock-eu"
    served = ChatCompletion.model_validate(orjson.loads(answer.body()))
    assert served.choices[0].message.content == "Jupiter."
    assert served.usage is not None and served.usage.total_tokens == 22
    assert stores(metrics, "stored") == 1


async def test_an_unfinished_stream_is_not_stored() -> None:
    cache, metrics = stage()
    ticket = cache.decide(principal(), chat(stream=True), None)
    recorder = cache.recorder(ticket)
    assert recorder is not None
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    recorder.feed(sse({**head, "choices": [{"index": 0, "delta": {"content": "Jup"}}]})[0])
    assert not await cache.store_stream(ticket, recorder, USAGE, "vllm-a")
    assert stores(metrics, "incomplete") == 1
    assert await cache.lookup(cache.decide(principal(), chat(), None)) is None


async def test_tenants_never_see_each_others_answers() -> None:
    cache, _ = stage()
    ticket = cache.decide(principal("acme"), chat(), None)
    await cache.store(ticket, BODY, USAGE, "vllm-a")
    other = cache.decide(principal("globex"), chat(), None)
    assert await cache.lookup(other) is None
    assert other.status == "miss"


async def test_a_tenant_that_forbids_storing_prompts_is_never_looked_up_or_stored() -> None:
    cache, metrics = stage()
    forbidden = principal("secretive", allowed=False)
    for header in (None, "refresh"):
        ticket = cache.decide(forbidden, chat(), header)
        assert ticket.key is None and ticket.status == "bypass"
        assert await cache.lookup(ticket) is None
        assert not await cache.store(ticket, BODY, USAGE, "vllm-a")
        assert cache.recorder(ticket) is None
    assert len(cache.backend) == 0  # type: ignore[arg-type]
    assert lookups(metrics, "bypass") == 2
    assert stores(metrics, "stored") == 0


async def test_bypass_neither_reads_nor_writes_and_refresh_only_writes() -> None:
    cache, metrics = stage()
    acme = principal()
    bypass = cache.decide(acme, chat(), "bypass")
    assert await cache.lookup(bypass) is None
    assert not await cache.store(bypass, BODY, USAGE, "vllm-a")
    seeded = cache.decide(acme, chat(), None)
    await cache.store(seeded, orjson.dumps({**ANSWER, "model": "old"}), USAGE, "vllm-a")

    refresh = cache.decide(acme, chat(), "refresh")
    assert await cache.lookup(refresh) is None  # there is an entry, but refresh skips it
    assert refresh.status == "miss"
    assert await cache.store(refresh, BODY, USAGE, "vllm-b")
    answer = await cache.lookup(cache.decide(acme, chat(), None))
    assert answer is not None and answer.deployment == "vllm-b"
    assert orjson.loads(answer.body())["model"] == "qwen-small"
    assert (lookups(metrics, "bypass"), lookups(metrics, "refresh")) == (1, 1)


async def test_a_sampled_request_is_bypassed() -> None:
    cache, _ = stage()
    ticket = cache.decide(principal(), chat(temperature=0.8), None)
    assert ticket.decision.reason == "sampled" and ticket.status == "bypass"
    assert not await cache.store(ticket, BODY, USAGE, "vllm-a")


async def test_oversized_answers_are_not_stored() -> None:
    cache, metrics = stage(max_entry=len(BODY))  # the entry header does not fit any more
    ticket = cache.decide(principal(), chat(), None)
    assert not await cache.store(ticket, BODY, USAGE, "vllm-a")
    assert stores(metrics, "too_large") == 1
    assert await cache.lookup(cache.decide(principal(), chat(), None)) is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"error":{"message":"overloaded"}}',
        orjson.dumps({**ANSWER, "choices": []}),
        orjson.dumps({**ANSWER, "choices": [{**ANSWER["choices"][0], "finish_reason": None}]}),
        orjson.dumps({**ANSWER, "choices": [{**ANSWER["choices"][0], "finish_reason": "abort"}]}),
    ],
)
async def test_unusable_answers_are_not_stored(body: bytes) -> None:
    cache, metrics = stage()
    ticket = cache.decide(principal(), chat(), None)
    assert not await cache.store(ticket, body, USAGE, "vllm-a")
    assert stores(metrics, "incomplete") == 1


def test_storable_embeddings_need_data() -> None:
    assert storable(Endpoint.EMBEDDINGS, b'{"object":"list","data":[{"embedding":[1.0]}]}')
    assert not storable(Endpoint.EMBEDDINGS, b'{"object":"list","data":[]}')


async def test_embeddings_are_cached() -> None:
    cache, _ = stage()
    body = orjson.dumps({"object": "list", "data": [{"embedding": [0.25]}], "model": "e"})
    embed = request(Endpoint.EMBEDDINGS, {"model": "e", "input": "hello"})
    ticket = cache.decide(principal(), embed, None)
    assert await cache.store(ticket, body, Usage(1, 0), "vllm-e")
    again = await cache.lookup(cache.decide(principal(), embed, None))
    assert again is not None and again.body() == body


class Broken:
    """A backend with a bug: every call raises."""

    max_entry_bytes = 1_000_000
    available = True

    async def get(self, key: str) -> bytes | None:
        raise RuntimeError("bug")

    async def set(self, key: str, value: bytes) -> bool:
        raise RuntimeError("bug")

    async def aclose(self) -> None:
        return None


class Down(Broken):
    """A backend in an outage: it answers None and False, and says it is unavailable."""

    available = False

    async def get(self, key: str) -> bytes | None:
        return None

    async def set(self, key: str, value: bytes) -> bool:
        return False


async def test_a_broken_backend_never_fails_the_request() -> None:
    metrics = GatewayMetrics()
    cache = PromptCacheStage(Broken(), metrics)
    ticket = cache.decide(principal(), chat(), None)
    assert await cache.lookup(ticket) is None
    assert not await cache.store(ticket, BODY, USAGE, "vllm-a")
    assert stores(metrics, "unavailable") == 1


async def test_an_unavailable_backend_makes_the_request_a_bypass() -> None:
    metrics = GatewayMetrics()
    cache = PromptCacheStage(Down(), metrics)
    ticket = cache.decide(principal(), chat(), None)
    assert await cache.lookup(ticket) is None
    assert ticket.status == "bypass"
    assert lookups(metrics, "bypass") == 1 and lookups(metrics, "miss") == 0


async def test_an_unreadable_entry_is_a_miss_and_counted() -> None:
    cache, metrics = stage()
    ticket = cache.decide(principal(), chat(), None)
    assert ticket.key is not None
    await cache.backend.set(ticket.key, b"garbage")
    assert await cache.lookup(ticket) is None
    assert ticket.status == "miss"
    assert sample(metrics, "fulcrum_cache_errors_total", action="decode") == 1


def test_saved_cost_is_counted() -> None:
    cache, metrics = stage()
    cache.record_saved(0.0125)
    cache.record_saved(0.0)
    assert sample(metrics, "fulcrum_cache_saved_usd_total") == pytest.approx(0.0125)


async def test_build_cache_follows_the_configuration() -> None:
    metrics = GatewayMetrics()
    assert build_cache(CacheConfig(), None, metrics) is None
    memory = build_cache(CacheConfig(enabled=True, max_entry_bytes=10), None, metrics)
    assert memory is not None and isinstance(memory.backend, MemoryCache)
    assert memory.backend.max_entry_bytes == 10
    with pytest.raises(ValueError, match="redis configuration"):
        build_cache(CacheConfig(enabled=True, backend="redis"), None, metrics)
    redis = build_cache(CacheConfig(enabled=True, backend="redis"), RedisConfig(), metrics)
    assert redis is not None and redis.backend.available  # no connection made yet
    await redis.aclose()


def test_the_config_rejects_an_entry_limit_above_the_memory_budget() -> None:
    with pytest.raises(ValueError, match="max_entry_bytes"):
        CacheConfig(enabled=True, max_bytes=100, max_entry_bytes=200)
    CacheConfig(enabled=True, backend="redis", max_bytes=100, max_entry_bytes=200)
