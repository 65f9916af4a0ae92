"""The outage policy: fail_open / fail_closed, retry pacing, logging, gauge, settlements.

A stand-in "remote" backend wraps a memory backend and can be switched off; the limiter's
monotonic clock is injected, so retry pacing is tested without waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from fulcrum.api.errors import ApiError
from fulcrum.config import LimitsConfig, RedisConfig
from fulcrum.limits.checks import Ask, Settlement, Verdict
from fulcrum.limits.limiter import RateLimiter, build_limiter
from fulcrum.limits.memory import MemoryBackend
from fulcrum.telemetry.metrics import GatewayMetrics
from tests.unit.limits.common import (
    Clock,
    admit_many,
    backend_errors,
    backend_up,
    demand,
    principal,
    try_admit,
)


class Switchable:
    """A remote backend that raises ConnectionError while ``down``; counts its calls."""

    remote = True

    def __init__(self, clock: Clock) -> None:
        self.inner = MemoryBackend(clock)
        self.down = False
        self.hang: asyncio.Event | None = None
        self.admits = 0
        self.settles = 0
        self.closed = False

    async def admit(self, ask: Ask) -> Verdict:
        self.admits += 1
        if self.hang is not None:
            await self.hang.wait()
        if self.down:
            raise ConnectionError("Connection refused")
        return await self.inner.admit(ask)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        self.settles += 1
        if self.down:
            raise ConnectionError("Connection refused")
        await self.inner.settle(settlements)

    async def aclose(self) -> None:
        self.closed = True


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def remote(clock: Clock) -> Switchable:
    return Switchable(clock)


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


def make(
    remote: Switchable,
    clock: Clock,
    metrics: GatewayMetrics,
    monotonic: Monotonic,
    policy: str = "fail_open",
) -> RateLimiter:
    return RateLimiter(
        remote,
        fallback=MemoryBackend(clock) if policy == "fail_open" else None,
        on_backend_error=policy,  # type: ignore[arg-type]
        metrics=metrics,
        retry_interval=2.0,
        deadline=0.05,
        monotonic=monotonic,
    )


async def test_fail_open_uses_local_limits_and_probes_redis_at_most_every_interval(
    remote: Switchable,
    clock: Clock,
    metrics: GatewayMetrics,
    monotonic: Monotonic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = make(remote, clock, metrics, monotonic)
    acme = principal(rpm=3)
    assert backend_up(metrics) == 1
    remote.down = True
    with caplog.at_level(logging.WARNING, logger="fulcrum.limits.limiter"):
        assert await admit_many(limiter, acme, demand(), 10) == 3  # local limits, same rpm
    assert remote.admits == 1  # one attempt; the other nine did not pay for a timeout
    assert backend_up(metrics) == 0
    assert backend_errors(metrics, "fail_open") == 10
    outage_logs = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outage_logs) == 1
    monotonic.now += 2.0  # the retry interval passed: the next request probes, still down
    await try_admit(limiter, acme, demand())
    assert remote.admits == 2
    remote.down = False
    await try_admit(limiter, acme, demand())  # not due yet: stays local
    assert remote.admits == 2
    monotonic.now += 2.0
    with caplog.at_level(logging.INFO, logger="fulcrum.limits.limiter"):
        assert await admit_many(limiter, acme, demand(), 10) == 3  # the shared window again
    assert remote.admits == 12
    assert backend_up(metrics) == 1
    assert any("answers again" in r.getMessage() for r in caplog.records)


async def test_fail_closed_refuses_with_503_while_redis_is_down(
    remote: Switchable, clock: Clock, metrics: GatewayMetrics, monotonic: Monotonic
) -> None:
    limiter = make(remote, clock, metrics, monotonic, "fail_closed")
    remote.down = True
    for _ in range(3):
        error = await try_admit(limiter, principal(rpm=3), demand())
        assert isinstance(error, ApiError)
        assert (error.status, error.type, error.code) == (
            503,
            "server_error",
            "rate_limiter_unavailable",
        )
        assert error.headers["retry-after"] == "2"
    assert remote.admits == 1
    assert backend_errors(metrics, "fail_closed") == 3
    assert backend_up(metrics) == 0
    remote.down = False
    monotonic.now += 2.0
    assert not isinstance(await try_admit(limiter, principal(rpm=3), demand()), ApiError)
    assert backend_up(metrics) == 1


async def test_a_hanging_backend_is_cut_off_by_the_deadline(
    remote: Switchable, clock: Clock, metrics: GatewayMetrics, monotonic: Monotonic
) -> None:
    limiter = make(remote, clock, metrics, monotonic)
    remote.hang = asyncio.Event()  # never set: Redis accepted the connection, never answers
    reservation = await try_admit(limiter, principal(rpm=3), demand())
    assert not isinstance(reservation, ApiError)
    assert backend_up(metrics) == 0


async def test_any_backend_fault_is_handled_never_raised(
    remote: Switchable, clock: Clock, metrics: GatewayMetrics, monotonic: Monotonic
) -> None:
    limiter = make(remote, clock, metrics, monotonic)

    async def broken(ask: Ask) -> Verdict:
        raise ValueError("unexpected reply")

    remote.admit = broken  # type: ignore[method-assign]
    assert not isinstance(await try_admit(limiter, principal(rpm=3), demand()), ApiError)
    assert backend_errors(metrics, "fail_open") == 1


async def test_a_fallback_reservation_settles_on_the_fallback(
    remote: Switchable, clock: Clock, metrics: GatewayMetrics, monotonic: Monotonic
) -> None:
    limiter = make(remote, clock, metrics, monotonic)
    acme = principal(concurrency=1)
    remote.down = True
    local = await limiter.admit(acme, demand())
    assert isinstance(await try_admit(limiter, acme, demand()), ApiError)  # local lease held
    remote.down = False
    monotonic.now += 2.0
    shared = await limiter.admit(acme, demand())  # Redis is back; its leases are separate
    remote.down = True
    monotonic.now += 2.0
    await local.settle(5, 0.0)
    assert remote.settles == 0  # not sent to the shared backend
    local_again = await limiter.admit(acme, demand())  # the local lease was released
    await local_again.settle(5, 0.0)
    await shared.settle(5, 0.0)


async def test_failed_settlements_are_kept_and_sent_when_redis_answers_again(
    remote: Switchable, clock: Clock, metrics: GatewayMetrics, monotonic: Monotonic
) -> None:
    limiter = make(remote, clock, metrics, monotonic)
    acme = principal(concurrency=2)
    first = await limiter.admit(acme, demand())
    second = await limiter.admit(acme, demand())
    remote.down = True
    await first.settle(1, 0.0)  # never raises
    await second.settle(1, 0.0)
    await limiter.flush()
    assert backend_up(metrics) == 0
    assert backend_errors(metrics, "settle_dropped") == 0
    remote.down = False
    monotonic.now += 2.0
    probe = await limiter.admit(principal("globex", rpm=5), demand())  # Redis answers again
    await limiter.flush()  # ...so the kept settlements were sent
    assert await admit_many(limiter, acme, demand(), 5) == 2  # both old leases released
    await probe.settle(0, 0.0)


async def test_settlements_are_batched(
    remote: Switchable, clock: Clock, metrics: GatewayMetrics, monotonic: Monotonic
) -> None:
    limiter = make(remote, clock, metrics, monotonic)
    acme = principal(rpm=1000)
    reservations = [await limiter.admit(acme, demand()) for _ in range(100)]
    for reservation in reservations:
        await reservation.settle(1, 0.0)
    await limiter.flush()
    assert remote.settles == 1


async def test_aclose_flushes_pending_settlements(
    remote: Switchable, clock: Clock, metrics: GatewayMetrics, monotonic: Monotonic
) -> None:
    limiter = make(remote, clock, metrics, monotonic)
    acme = principal(concurrency=1)
    reservation = await limiter.admit(acme, demand())
    await reservation.settle(1, 0.0)
    await limiter.aclose()
    assert remote.settles == 1 and remote.closed
    assert await admit_many(RateLimiter(remote.inner, metrics=metrics), acme, demand(), 2) == 1


async def test_settlements_beyond_capacity_are_counted_as_dropped(
    remote: Switchable, clock: Clock, metrics: GatewayMetrics, monotonic: Monotonic
) -> None:
    limiter = make(remote, clock, metrics, monotonic)
    acme = principal(rpm=1000)
    reservations = [await limiter.admit(acme, demand()) for _ in range(5)]
    remote.down = True
    await reservations[0].settle(1, 0.0)
    await limiter.flush()  # fails: Redis is now known down
    assert limiter._queue is not None
    limiter._queue._capacity = 2
    for reservation in reservations[1:]:
        await reservation.settle(1, 0.0)
    assert backend_errors(metrics, "settle_dropped") == 3
    await limiter.aclose()  # still down: the two left are dropped, counted, never raised
    assert backend_errors(metrics, "settle_dropped") == 5


def test_build_limiter_follows_the_configuration(metrics: GatewayMetrics) -> None:
    memory = build_limiter(LimitsConfig(), None, metrics)
    assert isinstance(memory.backend, MemoryBackend) and memory.fallback is None
    config = LimitsConfig(backend="redis", on_backend_error="fail_closed")
    shared = build_limiter(config, RedisConfig(retry_interval=3.0), metrics)
    assert shared.backend.remote and shared.fallback is None
    assert shared.retry_interval == 3.0
    open_config = LimitsConfig(backend="redis")
    assert isinstance(build_limiter(open_config, RedisConfig(), metrics).fallback, MemoryBackend)
    with pytest.raises(ValueError):
        build_limiter(open_config, None, metrics)
