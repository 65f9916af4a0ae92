"""Limit semantics through the RateLimiter over the memory backend, with a hand-moved clock."""

from __future__ import annotations

import pytest

from fulcrum.api.errors import ApiError
from fulcrum.auth.principal import Principal
from fulcrum.config import TenantConfig, TenantLimits
from fulcrum.limits.admission import Reservation
from fulcrum.limits.limiter import UNLIMITED, RateLimiter
from fulcrum.limits.memory import MemoryBackend
from fulcrum.telemetry.metrics import GatewayMetrics
from tests.unit.limits.common import (
    T0,
    Clock,
    admit_many,
    demand,
    principal,
    rejections,
    try_admit,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


@pytest.fixture
def limiter(clock: Clock, metrics: GatewayMetrics) -> RateLimiter:
    return RateLimiter(MemoryBackend(clock), metrics=metrics)


async def admitted(limiter: RateLimiter, who: Principal, **kwargs: object) -> Reservation:
    result = await try_admit(limiter, who, demand(**kwargs))  # type: ignore[arg-type]
    assert not isinstance(result, ApiError), result.message
    return result


async def refused(limiter: RateLimiter, who: Principal, **kwargs: object) -> ApiError:
    result = await try_admit(limiter, who, demand(**kwargs))  # type: ignore[arg-type]
    assert isinstance(result, ApiError), "expected a refusal"
    return result


# -- RPM ----------------------------------------------------------------------------------


async def test_a_burst_admits_exactly_the_rpm(limiter: RateLimiter) -> None:
    acme = principal(rpm=5)
    assert await admit_many(limiter, acme, demand(), 20) == 5
    error = await refused(limiter, acme)
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    assert error.message == (
        "Rate limit reached for requests per minute (RPM) of tenant `acme`: limit 5, used 5. "
        "Please try again in 1m0s."
    )
    assert error.headers["retry-after"] == "60"
    assert error.headers["retry-after-ms"] == "60000"
    assert error.headers["x-ratelimit-limit-requests"] == "5"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-reset-requests"] == "1m0s"


async def test_the_window_slides_instead_of_resetting_at_the_minute(
    limiter: RateLimiter, clock: Clock
) -> None:
    acme = principal(rpm=4)
    clock.now = T0 + 50  # late in a wall-clock minute
    assert await admit_many(limiter, acme, demand(), 4) == 4
    clock.now = T0 + 61  # a fixed window would have reset here and admitted 4 more
    error = await refused(limiter, acme)
    assert error.headers["retry-after-ms"] == "49000"
    assert error.message.endswith("Please try again in 49s.")
    clock.now = T0 + 109.999
    await refused(limiter, acme)
    clock.now = T0 + 110  # exactly 60 s after the burst: all four have left
    assert await admit_many(limiter, acme, demand(), 10) == 4


async def test_nothing_refills_during_a_spread_out_burst(
    limiter: RateLimiter, clock: Clock
) -> None:
    acme = principal(rpm=3)
    for _ in range(3):
        await admitted(limiter, acme)
        clock.advance(15)  # a token bucket would have refilled by now
    error = await refused(limiter, acme)  # t=45: entries at 0, 15, 30 are all in the window
    assert error.headers["retry-after"] == "15"
    clock.advance(15)  # t=60: the first left
    await admitted(limiter, acme)
    await refused(limiter, acme)


# -- TPM ----------------------------------------------------------------------------------


async def test_settle_replaces_the_estimate_with_real_tokens(limiter: RateLimiter) -> None:
    acme = principal(tpm=1000)
    first = await admitted(limiter, acme, tokens=400)
    second = await admitted(limiter, acme, tokens=400)
    assert second.headers["x-ratelimit-remaining-tokens"] == "200"
    error = await refused(limiter, acme, tokens=400)
    assert (error.type, error.code) == ("tokens", "rate_limit_exceeded")
    assert "limit 1000, used 800, requested 400" in error.message
    await first.settle(100, 0.0)
    await second.settle(50, 0.0)
    third = await admitted(limiter, acme, tokens=400)  # 150 real + 400 reserved
    assert third.headers["x-ratelimit-remaining-tokens"] == "450"
    await first.settle(1000, 0.0)  # a second settle of the same reservation changes nothing
    fourth = await admitted(limiter, acme, tokens=400)
    assert fourth.headers["x-ratelimit-remaining-tokens"] == "50"


async def test_real_usage_above_the_estimate_counts_too(limiter: RateLimiter) -> None:
    acme = principal(tpm=1000)
    reservation = await admitted(limiter, acme, tokens=100)
    await reservation.settle(950, 0.0)
    await refused(limiter, acme, tokens=100)


async def test_a_request_larger_than_the_whole_tpm_is_refused_for_good(
    limiter: RateLimiter, metrics: GatewayMetrics
) -> None:
    acme = principal(rpm=10, tpm=1000)
    error = await refused(limiter, acme, tokens=1001)
    assert (error.status, error.type, error.code) == (429, "tokens", "rate_limit_exceeded")
    assert "Request too large for tokens per minute (TPM) of tenant `acme`" in error.message
    assert "limit 1000, requested 1001" in error.message
    assert error.headers == {"x-should-retry": "false"}
    fits = await admitted(limiter, acme, tokens=1000)  # nothing was consumed by the refusal
    assert fits.headers["x-ratelimit-remaining-requests"] == "9"
    assert rejections(metrics, "tpm", "tenant") == 1


# -- all or nothing -----------------------------------------------------------------------


async def test_a_request_refused_by_tpm_consumes_no_rpm(limiter: RateLimiter) -> None:
    acme = principal(rpm=10, tpm=100)
    await admitted(limiter, acme, tokens=60)
    await refused(limiter, acme, tokens=60)
    await refused(limiter, acme, tokens=60)
    small = await admitted(limiter, acme, tokens=10)
    assert small.headers["x-ratelimit-remaining-requests"] == "8"  # 2 admitted, not 4


async def test_a_request_refused_by_one_scope_consumes_no_other_scope(
    limiter: RateLimiter,
) -> None:
    acme = principal(rpm=10, per_model={"small": {"rpm": 1}})
    await admitted(limiter, acme, model="small")
    for _ in range(5):
        error = await refused(limiter, acme, model="small")
        assert "of model `small` for tenant `acme`" in error.message
    # the tenant's own window holds 1 request, so 9 more fit on another model
    assert await admit_many(limiter, acme, demand(model="large"), 20) == 9


# -- scopes -------------------------------------------------------------------------------


async def test_per_key_limits_are_per_key_and_per_tenant(
    limiter: RateLimiter, metrics: GatewayMetrics
) -> None:
    limits = {"per_key": {"rpm": 2}}
    assert await admit_many(limiter, principal(key_id="k1", **limits), demand(), 5) == 2
    error = await refused(limiter, principal(key_id="k1", **limits))
    assert "of API key `k1` of tenant `acme`" in error.message
    assert await admit_many(limiter, principal(key_id="k2", **limits), demand(), 5) == 2
    other_tenant = principal("globex", key_id="k1", **limits)
    assert await admit_many(limiter, other_tenant, demand(), 5) == 2
    # a JWT caller (no key id) is not subject to per-key limits
    assert await admit_many(limiter, principal(**limits), demand(), 5) == 5
    assert rejections(metrics, "rpm", "key") == 10


async def test_per_model_limits_are_per_model(limiter: RateLimiter) -> None:
    acme = principal(per_model={"a": {"rpm": 1}, "b": {"rpm": 2}})
    assert await admit_many(limiter, acme, demand(model="a"), 5) == 1
    assert await admit_many(limiter, acme, demand(model="b"), 5) == 2
    unlimited = await limiter.admit(acme, demand(model="c"))
    assert unlimited is UNLIMITED
    assert unlimited.headers == {}


async def test_headers_describe_the_tightest_scope(limiter: RateLimiter) -> None:
    acme = principal(
        key_id="k", rpm=100, tpm=10_000, per_key={"rpm": 3}, per_model={"m": {"tpm": 500}}
    )
    reservation = await admitted(limiter, acme, tokens=100)
    assert reservation.headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "500",
        "x-ratelimit-remaining-tokens": "400",
        "x-ratelimit-reset-tokens": "1m0s",
    }


async def test_tenants_are_isolated(limiter: RateLimiter) -> None:
    assert await admit_many(limiter, principal("acme", rpm=2), demand(), 5) == 2
    assert await admit_many(limiter, principal("globex", rpm=2), demand(), 5) == 2
    # names that would collide if joined naively get separate counters
    assert await admit_many(limiter, principal("a:m", rpm=1), demand(), 2) == 1
    assert await admit_many(limiter, principal("a", rpm=1), demand(model="m"), 2) == 1


async def test_a_new_policy_applies_at_once(limiter: RateLimiter) -> None:
    assert await admit_many(limiter, principal(rpm=2), demand(), 5) == 2
    assert await admit_many(limiter, principal(rpm=4), demand(), 5) == 2  # the same window


# -- concurrency --------------------------------------------------------------------------


async def test_concurrency_leases_are_released_on_settle(limiter: RateLimiter) -> None:
    acme = principal(concurrency=2)
    first = await admitted(limiter, acme)
    await admitted(limiter, acme)
    error = await refused(limiter, acme)
    assert (error.type, error.code) == ("requests", "rate_limit_exceeded")
    assert error.message.startswith("Too many concurrent requests for tenant `acme`: limit 2")
    assert error.headers["retry-after"] == "1"
    await first.settle(0, 0.0)  # a failed request settles with 0 tokens: the slot frees
    await admitted(limiter, acme)
    await refused(limiter, acme)


async def test_a_lease_never_settled_expires(clock: Clock, metrics: GatewayMetrics) -> None:
    limiter = RateLimiter(MemoryBackend(clock, lease_ms=600_000), metrics=metrics)
    acme = principal(concurrency=1)
    await admitted(limiter, acme)
    clock.advance(599)
    await refused(limiter, acme)
    clock.advance(1)
    await admitted(limiter, acme)


# -- budgets ------------------------------------------------------------------------------


async def test_daily_budget_reserves_estimates_and_settles_real_cost(
    limiter: RateLimiter, clock: Clock, metrics: GatewayMetrics
) -> None:
    acme = principal(budget={"daily_usd": 1.0})
    clock.now = T0 + 22 * 3600  # 22:00 UTC
    first = await admitted(limiter, acme, cost_usd=0.4)
    second = await admitted(limiter, acme, cost_usd=0.4)
    error = await refused(limiter, acme, cost_usd=0.4)
    assert (error.status, error.type, error.code) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
    )
    assert "daily budget of tenant `acme` is exhausted: $0.80 of $1.00" in error.message
    assert error.headers["retry-after"] == str(2 * 3600)  # until midnight UTC
    await first.settle(10, 0.1)
    await second.settle(10, 0.1)
    third = await admitted(limiter, acme, cost_usd=0.4)  # 0.2 spent + 0.4 reserved
    await third.settle(10, 0.7)  # dearer than estimated: 0.9 spent
    await admitted(limiter, acme, cost_usd=0.1)  # exactly 1.0
    await refused(limiter, acme, cost_usd=0.0)  # spent: even a free request is refused
    clock.now = T0 + 24 * 3600  # the next UTC day
    await admitted(limiter, acme, cost_usd=0.9)
    assert rejections(metrics, "budget_daily", "tenant") == 2


async def test_monthly_budget_spans_days(limiter: RateLimiter, clock: Clock) -> None:
    acme = principal(budget={"daily_usd": 1.0, "monthly_usd": 2.5})
    clock.now = T0 + 30 * 86400 + 3600  # 31 January, 01:00
    for day in range(3):  # 31 Jan: 1.0, then 1 and 2 Feb: the month turned, so 2.0 more
        clock.now += day and 86400
        assert await admit_many(limiter, acme, demand(cost_usd=0.5), 3) == 2
    clock.now = T0 + 33 * 86400 + 3600  # 3 February
    await admitted(limiter, acme, cost_usd=0.5)
    error = await refused(limiter, acme, cost_usd=0.5)
    assert "monthly budget" in error.message and "$2.50 of $2.50" in error.message


async def test_settle_after_midnight_corrects_the_day_it_was_reserved_in(
    limiter: RateLimiter, clock: Clock
) -> None:
    acme = principal(budget={"daily_usd": 1.0})
    clock.now = T0 + 86400 - 1
    reservation = await admitted(limiter, acme, cost_usd=0.9)
    clock.advance(2)  # the next day
    await reservation.settle(0, 0.0)
    assert await admit_many(limiter, acme, demand(cost_usd=0.5), 3) == 2  # today is untouched


async def test_budget_is_only_checked_when_configured(limiter: RateLimiter) -> None:
    policy = TenantConfig(limits=TenantLimits(rpm=1000))
    acme = Principal("acme", "user", policy=policy)
    assert await admit_many(limiter, acme, demand(cost_usd=1e6), 3) == 3
