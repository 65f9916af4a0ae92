"""Redis killed mid-run and restarted: fail_open / fail_closed and recovery (own redis-server)."""

from __future__ import annotations

import asyncio
import time

from fulcrum.api.errors import ApiError
from fulcrum.config import LimitsConfig, RedisConfig
from fulcrum.limits.limiter import RateLimiter, build_limiter
from fulcrum.telemetry.metrics import GatewayMetrics
from tests.support.redis import RedisServer
from tests.unit.limits.common import (
    admit_many,
    backend_errors,
    backend_up,
    demand,
    principal,
    try_admit,
)


def config_for(server: RedisServer) -> RedisConfig:
    return RedisConfig(
        url=server.url,
        key_prefix="faults:",
        connect_timeout=0.2,
        timeout=0.3,
        retry_interval=0.1,
    )


async def until_admitted_by_redis(limiter: RateLimiter, metrics: GatewayMetrics) -> None:
    """Send requests until one is admitted by Redis again (the gauge is back to 1)."""
    deadline = time.monotonic() + 10
    while backend_up(metrics) != 1:
        assert time.monotonic() < deadline, "the limiter did not return to Redis"
        await try_admit(limiter, principal("probe", rpm=1_000_000), demand())
        await asyncio.sleep(0.02)  # pacing between probes, bounded by the deadline


async def test_fail_open_survives_redis_being_killed_and_returns_to_it(
    redis_server: RedisServer,
) -> None:
    metrics = GatewayMetrics()
    limiter = build_limiter(LimitsConfig(backend="redis"), config_for(redis_server), metrics)
    other = build_limiter(LimitsConfig(backend="redis"), config_for(redis_server), GatewayMetrics())
    try:
        acme = principal(rpm=5, concurrency=100)
        held = await limiter.admit(acme, demand())
        assert await admit_many(limiter, acme, demand(), 2) == 2  # 3 of 5 used, in Redis
        redis_server.kill()
        started = time.monotonic()
        assert await admit_many(limiter, acme, demand(), 10) == 5  # local window: a fresh 5
        assert time.monotonic() - started < 2  # no timeout paid per request
        assert backend_up(metrics) == 0
        assert backend_errors(metrics, "fail_open") == 10
        await held.settle(1, 0.0)  # settling against a dead Redis never raises
        await limiter.flush()
        redis_server.start()  # an empty Redis on the same port
        await until_admitted_by_redis(limiter, metrics)
        assert await admit_many(limiter, acme, demand(), 10) == 5  # shared again
        assert await admit_many(other, acme, demand(), 3) == 0  # ...with the other replica
    finally:
        await limiter.aclose()
        await other.aclose()


async def test_fail_closed_refuses_while_redis_is_down(redis_server: RedisServer) -> None:
    metrics = GatewayMetrics()
    config = LimitsConfig(backend="redis", on_backend_error="fail_closed")
    limiter = build_limiter(config, config_for(redis_server), metrics)
    try:
        acme = principal(rpm=100)
        await limiter.admit(acme, demand())
        redis_server.kill()
        for _ in range(5):
            error = await try_admit(limiter, acme, demand())
            assert isinstance(error, ApiError)
            assert (error.status, error.code) == (503, "rate_limiter_unavailable")
            assert int(error.headers["retry-after"]) >= 1
        assert backend_errors(metrics, "fail_closed") == 5
        assert backend_up(metrics) == 0
        redis_server.start()
        await until_admitted_by_redis(limiter, metrics)
        assert not isinstance(await try_admit(limiter, acme, demand()), ApiError)
    finally:
        await limiter.aclose()


async def test_redis_that_never_started_is_handled(redis_server: RedisServer) -> None:
    redis_server.stop()
    metrics = GatewayMetrics()
    limiter = build_limiter(LimitsConfig(backend="redis"), config_for(redis_server), metrics)
    try:
        assert await admit_many(limiter, principal(rpm=2), demand(), 4) == 2
        assert backend_up(metrics) == 0
    finally:
        await limiter.aclose()  # nothing pending; closing a never-connected client is fine
