"""RedisCache in an outage, with a scripted client: no calls while down, one probe per interval."""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from fulcrum.cache.redis_cache import RedisCache
from fulcrum.telemetry.metrics import GatewayMetrics
from tests.unit.cache.common import sample


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedRedis:
    """Counts calls; raises while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0
        self.data: dict[str, bytes] = {}
        self.expiry: dict[str, int] = {}

    async def get(self, key: str) -> bytes | None:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("refused")
        return self.data.get(key)

    async def set(self, key: str, value: bytes, px: int) -> bool:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("refused")
        self.data[key], self.expiry[key] = value, px
        return True

    async def aclose(self) -> None:
        return None


def make() -> tuple[RedisCache, ScriptedRedis, Clock, GatewayMetrics]:
    client, clock, metrics = ScriptedRedis(), Clock(), GatewayMetrics()
    cache = RedisCache(
        cast(Redis, client),
        "p:",
        ttl=2.5,
        max_entry_bytes=100,
        metrics=metrics,
        retry_interval=1.0,
        clock=clock,
    )
    return cache, client, clock, metrics


async def test_values_go_under_the_prefix_with_the_ttl_in_milliseconds() -> None:
    cache, client, _, _ = make()
    assert await cache.set("k", b"v")
    assert client.data == {"p:cache:k": b"v"} and client.expiry == {"p:cache:k": 2500}
    assert await cache.get("k") == b"v"
    assert not await cache.set("big", b"x" * 101)
    assert client.calls == 2  # the oversize value never reached Redis


async def test_while_down_redis_is_not_called_except_for_one_probe_per_interval() -> None:
    cache, client, clock, metrics = make()
    client.down = True
    assert await cache.get("k") is None  # the failure that starts the outage
    assert not cache.available
    for _ in range(10):
        assert await cache.get("k") is None
        assert not await cache.set("k", b"v")
    assert client.calls == 1
    clock.now = 1.0
    assert await cache.get("k") is None  # the probe, still failing
    assert await cache.get("k") is None  # skipped
    assert client.calls == 2
    client.down = False
    clock.now = 2.0
    assert await cache.set("k", b"v")  # the probe succeeds: Redis is back
    assert cache.available
    assert await cache.get("k") == b"v"
    assert client.calls == 4
    assert sample(metrics, "fulcrum_cache_errors_total", action="lookup") == 13
    assert sample(metrics, "fulcrum_cache_errors_total", action="store") == 10
    assert sample(metrics, "fulcrum_cache_backend_up") == 1


async def test_a_reply_of_an_unexpected_type_is_a_miss_not_an_outage() -> None:
    cache, client, _, metrics = make()
    client.data["p:cache:k"] = "text"  # type: ignore[assignment]
    assert await cache.get("k") is None
    assert cache.available
    assert sample(metrics, "fulcrum_cache_errors_total", action="lookup") == 0
