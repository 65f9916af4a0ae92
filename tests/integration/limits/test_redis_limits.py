"""Limit semantics through the Lua scripts on the real Redis (unique key prefix per test)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from fulcrum.api.errors import ApiError
from fulcrum.config import RedisConfig
from fulcrum.limits.limiter import RateLimiter
from fulcrum.limits.memory import MemoryBackend
from fulcrum.limits.periods import DAY_MS, periods_at
from fulcrum.limits.scripts import _PRELUDE
from fulcrum.telemetry.metrics import GatewayMetrics
from tests.integration.limits.conftest import LimiterFactory
from tests.unit.limits.common import (
    Clock,
    admit_many,
    backend_up,
    demand,
    principal,
    rejections,
    try_admit,
)


async def poll(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Await ``condition()`` until it is true; fail after ``timeout`` seconds."""
    import asyncio

    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)  # polling interval, bounded by the deadline


async def test_a_burst_admits_exactly_the_rpm(make_limiter: LimiterFactory) -> None:
    metrics = GatewayMetrics()
    limiter = make_limiter(metrics=metrics)
    acme = principal(rpm=5)
    assert await admit_many(limiter, acme, demand(), 12) == 5
    error = await try_admit(limiter, acme, demand())
    assert isinstance(error, ApiError)
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    assert "limit 5, used 5" in error.message
    assert 59 <= int(error.headers["retry-after"]) <= 60
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert rejections(metrics, "rpm", "tenant") == 8
    assert backend_up(metrics) == 1


async def test_the_window_slides(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter(window_ms=400)
    acme = principal(rpm=3)
    assert await admit_many(limiter, acme, demand(), 5) == 3
    started = time.monotonic()

    async def admitted_again() -> bool:
        return not isinstance(await try_admit(limiter, acme, demand()), ApiError)

    await poll(admitted_again)
    assert time.monotonic() - started > 0.2  # not before the entries left the window
    assert await admit_many(limiter, acme, demand(), 5) <= 2


async def test_settle_replaces_the_estimate(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    acme = principal(tpm=1000)
    first = await limiter.admit(acme, demand(tokens=400))
    second = await limiter.admit(acme, demand(tokens=400))
    assert second.headers["x-ratelimit-remaining-tokens"] == "200"
    error = await try_admit(limiter, acme, demand(tokens=400))
    assert isinstance(error, ApiError) and error.type == "tokens"
    assert "limit 1000, used 800, requested 400" in error.message
    await first.settle(100, 0.0)
    await second.settle(50, 0.0)
    await limiter.flush()
    third = await limiter.admit(acme, demand(tokens=400))
    assert third.headers["x-ratelimit-remaining-tokens"] == "450"


async def test_all_checks_apply_or_none(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    acme = principal(rpm=10, tpm=100, per_model={"small": {"rpm": 1}})
    await limiter.admit(acme, demand(tokens=60, model="small"))
    assert isinstance(await try_admit(limiter, acme, demand(tokens=60)), ApiError)  # tpm
    assert isinstance(await try_admit(limiter, acme, demand(tokens=1, model="small")), ApiError)
    reservation = await limiter.admit(acme, demand(tokens=10))
    assert reservation.headers["x-ratelimit-remaining-requests"] == "8"


async def test_scopes_are_independent(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    limits = {"per_key": {"rpm": 2}, "per_model": {"a": {"rpm": 1}}}
    assert await admit_many(limiter, principal(key_id="k1", **limits), demand(model="a"), 5) == 1
    assert await admit_many(limiter, principal(key_id="k1", **limits), demand(model="b"), 5) == 1
    assert await admit_many(limiter, principal(key_id="k2", **limits), demand(model="b"), 5) == 2
    globex = principal("globex", key_id="k1", **limits)
    assert await admit_many(limiter, globex, demand(model="b"), 5) == 2


async def test_concurrency_leases(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    acme = principal(concurrency=2)
    first = await limiter.admit(acme, demand())
    await limiter.admit(acme, demand())
    error = await try_admit(limiter, acme, demand())
    assert isinstance(error, ApiError) and "concurrent" in error.message
    await first.settle(0, 0.0)
    await limiter.flush()
    await limiter.admit(acme, demand())


async def test_a_crashed_replicas_leases_expire(make_limiter: LimiterFactory) -> None:
    crashed = make_limiter(lease_ms=300)
    acme = principal(concurrency=1)
    await crashed.admit(acme, demand())  # never settled: its replica "crashed"
    survivor = make_limiter(lease_ms=300)
    assert isinstance(await try_admit(survivor, acme, demand()), ApiError)

    async def admitted() -> bool:
        return not isinstance(await try_admit(survivor, acme, demand()), ApiError)

    await poll(admitted)


async def test_budgets_reserve_and_settle_in_redis_days(
    make_limiter: LimiterFactory, raw_redis: Redis, redis_config: RedisConfig
) -> None:
    limiter = make_limiter()
    acme = principal(budget={"daily_usd": 1.0, "monthly_usd": 1.5})
    first = await limiter.admit(acme, demand(cost_usd=0.4))
    await limiter.admit(acme, demand(cost_usd=0.4))
    error = await try_admit(limiter, acme, demand(cost_usd=0.4))
    assert isinstance(error, ApiError)
    assert (error.status, error.type, error.code) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
    )
    assert "daily budget" in error.message and "$0.80 of $1.00" in error.message
    await first.settle(10, 0.1)
    await limiter.flush()
    await limiter.admit(acme, demand(cost_usd=0.4))  # 0.5 + 0.4
    seconds, micros = await raw_redis.time()
    periods = periods_at(seconds * 1000 + micros // 1000)
    base = f"{redis_config.key_prefix}rl:{{acme}}:b"
    assert int(await raw_redis.get(f"{base}:d:{periods.day}")) == 900_000
    assert int(await raw_redis.get(f"{base}:m:{periods.month}")) == 900_000
    assert await raw_redis.pexpiretime(f"{base}:d:{periods.day}") == periods.day_end_ms + DAY_MS
    error = await try_admit(limiter, acme, demand(cost_usd=0.2))
    assert isinstance(error, ApiError) and "daily budget" in error.message
    assert int(error.headers["retry-after"]) == -(-(periods.day_end_ms - seconds * 1000) // 1000)


async def test_every_key_expires(
    make_limiter: LimiterFactory, raw_redis: Redis, redis_config: RedisConfig
) -> None:
    limiter = make_limiter()
    acme = principal(
        key_id="k",
        rpm=10,
        tpm=10_000,
        concurrency=5,
        per_key={"rpm": 5},
        per_model={"m": {"tpm": 5000}},
        budget={"daily_usd": 10, "monthly_usd": 100},
    )
    held = await limiter.admit(acme, demand(cost_usd=0.01))
    done = await limiter.admit(acme, demand(cost_usd=0.01))
    await done.settle(5, 0.02)
    await limiter.flush()
    keys = [key async for key in raw_redis.scan_iter(match=f"{redis_config.key_prefix}*")]
    assert len(keys) == 8  # t:w t:n t:c k:w m:w m:n b:d b:m
    for key in keys:
        ttl = await raw_redis.pttl(key)
        assert ttl > 0, key
    assert held.headers


async def test_the_redis_server_clock_is_used(
    make_limiter: LimiterFactory,
    raw_redis: Redis,
    redis_config: RedisConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limiter = make_limiter()
    monkeypatch.setattr(time, "time", lambda: 0.0)  # this replica's clock is wildly wrong
    await limiter.admit(principal(rpm=5, budget={"daily_usd": 1}), demand(cost_usd=0.1))
    monkeypatch.undo()
    seconds, micros = await raw_redis.time()
    server_ms = seconds * 1000 + micros // 1000
    entries = await raw_redis.zrange(
        f"{redis_config.key_prefix}rl:{{acme}}:t:w", 0, -1, withscores=True
    )
    assert len(entries) == 1 and abs(entries[0][1] - server_ms) < 5_000
    day = periods_at(server_ms).day
    assert await raw_redis.exists(f"{redis_config.key_prefix}rl:{{acme}}:b:d:{day}")


async def test_the_lua_calendar_matches_python(raw_redis: Redis) -> None:
    probe = (
        _PRELUDE
        + """
local out = {}
for i = 1, #ARGV do
  local days = tonumber(ARGV[i])
  local y, m, d = civil(days)
  out[#out + 1] = y * 10000 + m * 100 + d
  out[#out + 1] = (days - d + 1 + month_days(y, m)) * DAY
end
return out
"""
    )
    rng = random.Random(7)
    days = [rng.randrange(0, 47_482) for _ in range(500)]  # 1970 .. 2100
    days += [
        (datetime(y, m, 1, tzinfo=UTC).timestamp() // 86400) - 1
        for y in (2000, 2024, 2100)
        for m in (1, 2, 3, 12)
    ]
    days = [int(day) for day in days]
    reply = await raw_redis.eval(probe, 0, *days)
    for index, day in enumerate(days):
        expected = periods_at(day * DAY_MS)
        assert (reply[2 * index], reply[2 * index + 1]) == (expected.day, expected.month_end_ms)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_redis_and_memory_decide_alike(make_limiter: LimiterFactory, seed: int) -> None:
    """A random sequence of admissions and settlements (well within one window) gets the same
    decisions and the same remaining counts from the Lua scripts and the memory backend."""
    rng = random.Random(seed)
    shared = make_limiter()
    local = RateLimiter(MemoryBackend(Clock(time.time())), metrics=GatewayMetrics())
    who = [
        principal("acme", key_id="k1", rpm=30, tpm=3000, concurrency=6, per_key={"rpm": 20}),
        principal("acme", key_id="k2", rpm=30, tpm=3000, concurrency=6, per_key={"rpm": 20}),
        principal("globex", tpm=2000, per_model={"a": {"rpm": 5, "tpm": 900}}),
    ]
    held: list[tuple[object, object]] = []
    outcomes = {True: 0, False: 0}
    for step in range(150):
        if held and rng.random() < 0.4:
            left, right = held.pop(rng.randrange(len(held)))
            tokens = rng.randrange(0, 400)
            await left.settle(tokens, 0.0)  # type: ignore[attr-defined]
            await right.settle(tokens, 0.0)  # type: ignore[attr-defined]
            await shared.flush()
            continue
        caller = rng.choice(who)
        ask = demand(tokens=rng.randrange(1, 500), model=rng.choice("ab"))
        a = await try_admit(shared, caller, ask)
        b = await try_admit(local, caller, ask)
        assert isinstance(a, ApiError) == isinstance(b, ApiError), step
        outcomes[isinstance(a, ApiError)] += 1
        if isinstance(a, ApiError) and isinstance(b, ApiError):
            assert a.message.split(" Please")[0] == b.message.split(" Please")[0], step
        else:
            strip = lambda h: {k: v for k, v in h.items() if "reset" not in k}  # noqa: E731
            assert strip(a.headers) == strip(b.headers), step  # type: ignore[union-attr]
            held.append((a, b))
    assert outcomes[True] > 5 and outcomes[False] > 5, outcomes  # both paths exercised
