"""Accuracy under concurrency: several "replicas" (limiters with their own Redis pools)."""

from __future__ import annotations

import asyncio

from fulcrum.api.errors import ApiError
from fulcrum.auth.principal import Principal
from fulcrum.limits.admission import Demand, Reservation
from fulcrum.limits.limiter import RateLimiter
from tests.integration.limits.conftest import LimiterFactory
from tests.unit.limits.common import demand, principal, try_admit


async def burst(
    replicas: list[RateLimiter], who: Principal, asks: list[Demand]
) -> list[Reservation | ApiError]:
    """Every ask at once, spread round-robin over the replicas."""
    return list(
        await asyncio.gather(
            *(try_admit(replicas[i % len(replicas)], who, ask) for i, ask in enumerate(asks))
        )
    )


async def test_three_replicas_admit_exactly_the_rpm(make_limiter: LimiterFactory) -> None:
    replicas = [make_limiter() for _ in range(3)]
    acme, globex = principal("acme", rpm=50), principal("globex", rpm=50)
    results = await burst(replicas, acme, [demand()] * 200)
    assert sum(not isinstance(r, ApiError) for r in results) == 50
    refused = [r for r in results if isinstance(r, ApiError)]
    assert all(r.status == 429 and r.type == "requests" for r in refused)
    # the other tenant is untouched by acme's burst
    assert (
        sum(not isinstance(r, ApiError) for r in await burst(replicas, globex, [demand()] * 60))
        == 50
    )


async def test_tpm_is_never_exceeded_by_concurrent_estimates(make_limiter: LimiterFactory) -> None:
    replicas = [make_limiter() for _ in range(3)]
    acme = principal(tpm=10_000)
    asks = [demand(tokens=100 + (i * 37) % 900) for i in range(200)]
    results = await burst(replicas, acme, asks)
    reserved = sum(
        ask.tokens for ask, r in zip(asks, results, strict=True) if not isinstance(r, ApiError)
    )
    smallest_refused = min(
        ask.tokens for ask, r in zip(asks, results, strict=True) if isinstance(r, ApiError)
    )
    assert reserved <= 10_000
    # usage only grew during the burst, so each refused ask really did not fit at the end
    assert reserved + smallest_refused > 10_000


async def test_concurrency_limit_holds_across_replicas(make_limiter: LimiterFactory) -> None:
    replicas = [make_limiter() for _ in range(3)]
    acme = principal(concurrency=7)
    results = await burst(replicas, acme, [demand()] * 60)
    held = [r for r in results if not isinstance(r, ApiError)]
    assert len(held) == 7
    await asyncio.gather(*(r.settle(1, 0.0) for r in held))
    await asyncio.gather(*(replica.flush() for replica in replicas))
    again = await burst(replicas, acme, [demand()] * 60)
    assert sum(not isinstance(r, ApiError) for r in again) == 7


async def test_budget_holds_across_replicas(make_limiter: LimiterFactory) -> None:
    replicas = [make_limiter() for _ in range(3)]
    acme = principal(budget={"daily_usd": 5.0})
    results = await burst(replicas, acme, [demand(cost_usd=0.1)] * 100)
    assert sum(not isinstance(r, ApiError) for r in results) == 50
