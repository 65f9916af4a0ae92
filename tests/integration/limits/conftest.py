"""Limiters over the real Redis, closed (and their settlements flushed) after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from fulcrum.config import LimitsConfig, RedisConfig
from fulcrum.limits.checks import LEASE_MS, WINDOW_MS
from fulcrum.limits.limiter import RateLimiter, build_limiter
from fulcrum.limits.memory import MemoryBackend
from fulcrum.limits.redis_backend import RedisBackend
from fulcrum.telemetry.metrics import GatewayMetrics

LimiterFactory = Callable[..., RateLimiter]


@pytest.fixture
async def make_limiter(redis_config: RedisConfig) -> AsyncIterator[LimiterFactory]:
    """``make_limiter(window_ms=…, lease_ms=…, metrics=…)``: a limiter with its own client.

    Timeouts are generous: these tests are about what Redis decides, and a connect storm on a
    busy CI machine must not turn into a (correct, but here unwanted) local fallback.
    """
    made: list[RateLimiter] = []
    relaxed = redis_config.model_copy(update={"connect_timeout": 5.0, "timeout": 5.0})

    def factory(
        *,
        window_ms: int = WINDOW_MS,
        lease_ms: int = LEASE_MS,
        metrics: GatewayMetrics | None = None,
        config: RedisConfig = relaxed,
    ) -> RateLimiter:
        metrics = metrics or GatewayMetrics()
        if window_ms == WINDOW_MS and lease_ms == LEASE_MS:
            limiter = build_limiter(LimitsConfig(backend="redis"), config, metrics)
        else:
            client = Redis.from_url(config.url, socket_timeout=2, socket_connect_timeout=2)
            backend = RedisBackend(
                client, config.key_prefix, window_ms=window_ms, lease_ms=lease_ms
            )
            limiter = RateLimiter(backend, fallback=MemoryBackend(), metrics=metrics)
        made.append(limiter)
        return limiter

    yield factory
    for limiter in made:
        await limiter.aclose()
    assert all(limiter.up for limiter in made), "a limiter fell back to local limits"


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client to look at what the limiter wrote."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()
