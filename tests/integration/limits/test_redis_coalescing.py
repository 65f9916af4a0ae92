"""Coalesced admissions on the real Redis: concurrent asks share script calls, stay exact, and
a batch decides as one call per ask would have, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from redis.asyncio import Redis

from fulcrum.api.errors import ApiError
from fulcrum.config import LimitsConfig, RedisConfig
from fulcrum.limits.checks import Ask, Verdict
from fulcrum.limits.limiter import RateLimiter, build_limiter
from fulcrum.limits.memory import MemoryBackend
from fulcrum.limits.plans import build_plan
from fulcrum.limits.redis_backend import RedisBackend
from fulcrum.telemetry.metrics import GatewayMetrics
from tests.integration.limits.conftest import LimiterFactory
from tests.support.redis import RedisServer
from tests.unit.limits.common import backend_errors, demand, principal, try_admit


def redis_of(limiter: RateLimiter) -> RedisBackend:
    backend = limiter.backend
    assert isinstance(backend, RedisBackend)
    return backend


class Gate:
    """Holds the backend's next script calls until opened; says when one is waiting."""

    def __init__(self, backend: RedisBackend) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        self.batches: list[int] = []
        self.fail_with: Exception | None = None
        self._real = backend.admit_batch
        backend.admit_batch = self._admit_batch  # type: ignore[method-assign]

    async def _admit_batch(self, asks: Sequence[Ask]) -> list[Verdict]:
        self.batches.append(len(asks))
        self.entered.set()
        await self.opened.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return await self._real(asks)


async def test_concurrent_admissions_share_calls_and_admit_exactly_the_rpm(
    make_limiter: LimiterFactory,
) -> None:
    limiter = make_limiter()
    acme, globex = principal("acme", rpm=50), principal("globex", rpm=70, tpm=100_000)
    callers = [acme, globex] * 150
    results = await asyncio.gather(*(try_admit(limiter, who, demand()) for who in callers))
    admitted = [
        who.tenant for who, r in zip(callers, results, strict=True) if not isinstance(r, ApiError)
    ]
    assert admitted.count("acme") == 50
    assert admitted.count("globex") == 70
    calls = redis_of(limiter).admit_calls
    assert calls < len(callers) / 10, calls  # 300 asks, a handful of script calls
    # ...and the counts are Redis's own: another replica sees both windows full.
    other = make_limiter()
    assert isinstance(await try_admit(other, acme, demand()), ApiError)
    assert isinstance(await try_admit(other, globex, demand()), ApiError)


async def test_one_ask_alone_goes_at_once_in_its_own_call(make_limiter: LimiterFactory) -> None:
    limiter = make_limiter()
    acme = principal(rpm=10)
    for expected_calls in (1, 2, 3):
        await limiter.admit(acme, demand())
        assert redis_of(limiter).admit_calls == expected_calls


async def test_a_batch_decides_in_order_like_the_memory_backend(
    make_limiter: LimiterFactory,
) -> None:
    """Mixed tenants, keys, models and budgets in one script call: every ask sees what the
    asks before it in the batch reserved, exactly as sequential decisions would."""
    backend = redis_of(make_limiter())
    memory = MemoryBackend()
    callers = [
        principal("acme", key_id="k1", rpm=7, concurrency=9, per_key={"rpm": 4}),
        principal("acme", key_id="k2", rpm=7, concurrency=9, per_key={"rpm": 4}),
        principal("globex", tpm=2000, per_model={"a": {"rpm": 3, "tpm": 900}}),
        principal("initech", budget={"daily_usd": 1.0, "monthly_usd": 1.5}),
    ]
    asks = []
    for index in range(60):
        who = callers[index % len(callers)]
        model = "ab"[index % 2]
        tokens = 100 + (index * 53) % 400
        plan = build_plan(who, model)
        asks.append(Ask(f"ask-{index}", plan, tokens, 150_000 if who.tenant == "initech" else 0))
    shared = await backend.admit_batch(asks)
    local = [memory.decide(ask) for ask in asks]
    assert [v.admitted for v in shared] == [v.admitted for v in local]
    assert 10 < sum(v.admitted for v in shared) < 50  # both outcomes occur

    def comparable(ask: Ask, verdict: Verdict) -> tuple[object, ...]:
        refusal = verdict.refusal
        usage = tuple(  # tokens are only tracked (by Redis) where there is a TPM limit
            None if u is None else (u.requests, u.tokens if scope.tpm is not None else None)
            for scope, u in zip(ask.plan.scopes, verdict.usage, strict=True)
        )
        return (None if refusal is None else (refusal.limit, refusal.scope, refusal.used), usage)

    assert [comparable(a, v) for a, v in zip(asks, shared, strict=True)] == [
        comparable(a, v) for a, v in zip(asks, local, strict=True)
    ]


async def test_an_ask_given_up_before_its_batch_left_is_never_applied(
    make_limiter: LimiterFactory, raw_redis: Redis, redis_config: RedisConfig
) -> None:
    limiter = make_limiter()
    backend = redis_of(limiter)
    gate = Gate(backend)
    acme = principal(rpm=10)
    first = asyncio.create_task(limiter.admit(acme, demand()))
    await gate.entered.wait()  # the first call is in flight
    second = asyncio.create_task(limiter.admit(acme, demand()))
    await asyncio.sleep(0)  # let it queue behind the call in flight
    second.cancel()
    gate.opened.set()
    await first
    assert second.cancelled()
    await limiter.flush()
    assert gate.batches == [1]  # the given-up ask was not sent at all
    window = f"{redis_config.key_prefix}rl:{{acme}}:t:w"
    assert await raw_redis.zcard(window) == 1


async def test_a_failed_call_fails_its_batch_and_the_asks_behind_it() -> None:
    """Each caller then gets the outage policy (here fail_closed: a 503 each, all counted)."""
    metrics = GatewayMetrics()
    config = RedisConfig(url="redis://127.0.0.1:1/0", key_prefix="unused:")
    limiter = build_limiter(
        LimitsConfig(backend="redis", on_backend_error="fail_closed"), config, metrics
    )
    try:
        gate = Gate(redis_of(limiter))
        gate.fail_with = ConnectionError("Connection reset by peer")
        acme = principal(rpm=10)
        first = asyncio.create_task(try_admit(limiter, acme, demand()))
        await gate.entered.wait()
        behind = [asyncio.create_task(try_admit(limiter, acme, demand())) for _ in range(5)]
        await asyncio.sleep(0)  # they queue behind the call in flight
        gate.opened.set()
        results = await asyncio.gather(first, *behind)
        assert all(isinstance(r, ApiError) and r.status == 503 for r in results)
        assert gate.batches == [1]  # the ones behind were failed, not sent into the outage
        assert backend_errors(metrics, "fail_closed") == 6
        assert not limiter.up
    finally:
        await limiter.aclose()


async def test_a_redis_that_never_answers_is_cut_off_by_the_timeouts() -> None:
    """A server that accepts connections and then says nothing: the admission call (its
    connection handshake included) ends within the configured timeouts."""
    hung: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    metrics = GatewayMetrics()
    config = RedisConfig(
        url=f"redis://127.0.0.1:{port}/0", key_prefix="hung:", connect_timeout=0.1, timeout=0.1
    )
    limiter = build_limiter(
        LimitsConfig(backend="redis", on_backend_error="fail_closed"), config, metrics
    )
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        error = await try_admit(limiter, principal(rpm=10), demand())
        assert isinstance(error, ApiError) and error.status == 503
        assert loop.time() - started < 1.0
        assert hung  # it did connect: the timer, not a refused connection, ended the call
    finally:
        await limiter.aclose()
        for writer in hung:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_scripts_are_loaded_again_after_redis_forgot_them(
    redis_server: RedisServer,
) -> None:
    config = RedisConfig(url=redis_server.url, key_prefix="noscript:")
    limiter = build_limiter(LimitsConfig(backend="redis"), config, GatewayMetrics())
    raw = Redis.from_url(redis_server.url)
    try:
        acme = principal(rpm=3, concurrency=5)
        held = await limiter.admit(acme, demand())
        await raw.script_flush()  # this test's own server: nobody else's scripts go
        await held.settle(1, 0.0)
        await limiter.flush()
        assert not isinstance(await try_admit(limiter, acme, demand()), ApiError)
        assert limiter.up  # every call was answered by Redis, none fell back
        assert await raw.zcard("noscript:rl:{acme}:t:w") == 2
        assert await raw.zcard("noscript:rl:{acme}:t:c") == 1  # the settled lease is gone
    finally:
        await raw.aclose()
        await limiter.aclose()
