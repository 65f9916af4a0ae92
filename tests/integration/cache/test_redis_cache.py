"""The Redis backend against a real Redis: round trips, TTLs, limits, and outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from redis.asyncio import Redis

from fulcrum.cache.prompt_cache import PromptCacheStage
from fulcrum.cache.redis_cache import RedisCache
from fulcrum.config import RedisConfig
from fulcrum.providers.base import Usage
from fulcrum.telemetry.metrics import GatewayMetrics
from tests.support.redis import RedisServer
from tests.unit.cache.common import chat, principal, sample

BODY = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Jupiter."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22},
    }
)


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def metrics() -> GatewayMetrics:
    return GatewayMetrics()


@pytest.fixture
async def cache(redis_config: RedisConfig, metrics: GatewayMetrics) -> AsyncIterator[RedisCache]:
    backend = RedisCache.from_config(redis_config, 60, 4096, metrics)
    yield backend
    await backend.aclose()


def errors(metrics: GatewayMetrics, action: str) -> float:
    return sample(metrics, "fulcrum_cache_errors_total", action=action)


def backend_up(metrics: GatewayMetrics) -> float | None:
    return metrics.registry.get_sample_value("fulcrum_cache_backend_up")


async def test_a_value_round_trips_under_the_prefix_with_a_ttl(
    cache: RedisCache, raw_redis: Redis, redis_prefix: str
) -> None:
    assert await cache.get("k1") is None
    assert await cache.set("k1", b"\x00value\n")
    assert await cache.get("k1") == b"\x00value\n"
    assert await raw_redis.get(f"{redis_prefix}cache:k1") == b"\x00value\n"
    ttl_ms = await raw_redis.pttl(f"{redis_prefix}cache:k1")
    assert 59_000 < ttl_ms <= 60_000


async def test_an_entry_expires_in_redis(
    redis_config: RedisConfig, metrics: GatewayMetrics, raw_redis: Redis, redis_prefix: str
) -> None:
    short = RedisCache.from_config(redis_config, 0.05, 4096, metrics)
    try:
        assert await short.set("k", b"v")
        assert 0 < await raw_redis.pttl(f"{redis_prefix}cache:k") <= 50
        deadline = time.monotonic() + 5
        while await short.get("k") is not None:  # Redis expires it by itself
            assert time.monotonic() < deadline, "the entry never expired"
            await asyncio.sleep(0.01)  # polling interval, bounded by the deadline
    finally:
        await short.aclose()


async def test_an_oversize_entry_is_not_stored(
    cache: RedisCache, raw_redis: Redis, redis_prefix: str
) -> None:
    assert not await cache.set("big", b"x" * 4097)
    assert await raw_redis.exists(f"{redis_prefix}cache:big") == 0
    assert await cache.set("fits", b"x" * 4096)


async def test_replicas_share_answers_through_redis(redis_config: RedisConfig) -> None:
    one = PromptCacheStage(
        RedisCache.from_config(redis_config, 60, 65536, GatewayMetrics()), GatewayMetrics()
    )
    two = PromptCacheStage(
        RedisCache.from_config(redis_config, 60, 65536, GatewayMetrics()), GatewayMetrics()
    )
    try:
        ticket = one.decide(principal(), chat(), None)
        assert await one.store(ticket, BODY, Usage(20, 2), "vllm-a")
        answer = await two.lookup(two.decide(principal(), chat(), None))
        assert answer is not None and answer.usage == Usage(20, 2)
        assert orjson.loads(answer.body())["choices"] == orjson.loads(BODY)["choices"]
        assert await two.lookup(two.decide(principal("globex"), chat(), None)) is None
    finally:
        await one.aclose()
        await two.aclose()


def outage_config(server: RedisServer) -> RedisConfig:
    return RedisConfig(
        url=server.url,
        key_prefix="cache-faults:",
        connect_timeout=0.2,
        timeout=0.3,
        retry_interval=0.1,
    )


async def test_a_killed_redis_is_bypassed_and_used_again_once_it_is_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = GatewayMetrics()
    backend = RedisCache.from_config(outage_config(redis_server), 60, 65536, metrics)
    cache = PromptCacheStage(backend, metrics)
    acme = principal()
    try:
        seeded = cache.decide(acme, chat(), None)
        assert await cache.store(seeded, BODY, Usage(20, 2), "vllm-a")
        assert await cache.lookup(cache.decide(acme, chat(), None)) is not None
        assert backend_up(metrics) == 1

        redis_server.kill()
        started = time.monotonic()
        for _ in range(20):
            ticket = cache.decide(acme, chat(), None)
            assert await cache.lookup(ticket) is None  # no exception, served as a bypass
            assert ticket.status == "bypass"
            assert not await cache.store(ticket, BODY, Usage(20, 2), "vllm-a")
        assert time.monotonic() - started < 2  # no timeout paid per request
        assert backend_up(metrics) == 0
        assert errors(metrics, "lookup") == 20
        assert errors(metrics, "store") == 20
        assert sample(metrics, "fulcrum_cache_lookups_total", result="bypass") == 20
        assert sample(metrics, "fulcrum_cache_stores_total", result="unavailable") == 20
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1  # logged once per outage

        redis_server.start()  # an empty Redis on the same port
        deadline = time.monotonic() + 10
        while True:
            ticket = cache.decide(acme, chat(), None)
            if await cache.store(ticket, BODY, Usage(20, 2), "vllm-a"):
                break
            assert time.monotonic() < deadline, "the cache did not return to Redis"
            await asyncio.sleep(0.02)  # pacing between probes, bounded by the deadline
        assert backend_up(metrics) == 1
        hit = cache.decide(acme, chat(), None)
        assert await cache.lookup(hit) is not None and hit.status == "hit"
    finally:
        await cache.aclose()


async def test_a_redis_that_never_answered_is_bypassed_from_the_start(
    redis_server: RedisServer,
) -> None:
    metrics = GatewayMetrics()
    config = outage_config(redis_server)
    redis_server.kill()
    cache = PromptCacheStage(RedisCache.from_config(config, 60, 65536, metrics), metrics)
    try:
        ticket = cache.decide(principal(), chat(), None)
        assert await cache.lookup(ticket) is None
        assert ticket.status == "bypass"
        assert errors(metrics, "lookup") == 1
    finally:
        await cache.aclose()
