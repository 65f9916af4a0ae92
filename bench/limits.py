"""Micro-benchmark of the admission stage: admit + settle per request, memory vs. Redis.

Run with ``.venv/bin/python -m bench.limits`` (options: ``--requests``, ``--concurrency``,
``--redis-url``). For each backend it measures, in this process:

- sequential: one request at a time; admit latency percentiles, and CPU per request
  (``time.process_time``: this process only, so Redis's own CPU is not included);
- concurrent: ``--concurrency`` requests in flight; throughput and CPU per request, and for
  Redis the admission script calls per request (concurrent asks are coalesced into one call).

Every request carries a realistic plan (tenant RPM/TPM/concurrency, per-model TPM, daily and
monthly budgets) and is settled, so batching of settlements is part of the figures. Redis keys
live under a unique prefix that is deleted at the end; the database is never flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass

from bench.stats import Summary
from fulcrum.auth.principal import Principal
from fulcrum.config import LimitsConfig, RedisConfig, TenantConfig, TenantLimits
from fulcrum.limits.admission import Demand
from fulcrum.limits.limiter import RateLimiter, build_limiter
from fulcrum.telemetry.metrics import GatewayMetrics

POLICY = TenantConfig(
    limits=TenantLimits.model_validate(
        {
            "rpm": 10_000_000,
            "tpm": 10_000_000_000,
            "concurrency": 100_000,
            "per_model": {"bench-model": {"tpm": 10_000_000_000}},
            "budget": {"daily_usd": 1e9, "monthly_usd": 1e10},
        }
    )
)
DEMAND = Demand(model="bench-model", tokens=1500, cost_usd=0.002)


@dataclass(frozen=True)
class Figures:
    backend: str
    sequential: Summary  # admit latency, seconds
    sequential_cpu_us: float  # per admit + settle
    concurrent_rps: float
    concurrent_cpu_us: float
    concurrent_calls: float | None  # admission script calls per request (Redis: coalesced)


async def _one(limiter: RateLimiter, who: Principal) -> float:
    started = time.perf_counter()
    reservation = await limiter.admit(who, DEMAND)
    elapsed = time.perf_counter() - started
    await reservation.settle(1200, 0.0015)
    return elapsed


async def measure(name: str, limiter: RateLimiter, requests: int, concurrency: int) -> Figures:
    who = Principal(tenant=f"bench-{uuid.uuid4().hex[:6]}", subject="bench", policy=POLICY)
    for _ in range(200):  # warm-up: connections, script load, caches
        await _one(limiter, who)
    await limiter.flush()

    cpu = time.process_time()
    latencies = [await _one(limiter, who) for _ in range(requests)]
    await limiter.flush()
    sequential_cpu = (time.process_time() - cpu) / requests

    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            await _one(limiter, who)

    calls_before = _admit_calls(limiter)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await limiter.flush()
    wall = time.perf_counter() - wall
    concurrent_cpu = (time.process_time() - cpu) / requests
    calls_after = _admit_calls(limiter)
    calls = None
    if calls_before is not None and calls_after is not None:
        calls = (calls_after - calls_before) / requests
    return Figures(
        name,
        Summary.of(latencies),
        sequential_cpu * 1e6,
        requests / wall,
        concurrent_cpu * 1e6,
        calls,
    )


def _admit_calls(limiter: RateLimiter) -> int | None:
    """Script calls the Redis backend made to admit so far (None for other backends)."""
    from fulcrum.limits.redis_backend import RedisBackend

    backend = limiter.backend
    return backend.admit_calls if isinstance(backend, RedisBackend) else None


async def _cleanup(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


async def run(requests: int, concurrency: int, redis_url: str | None) -> list[Figures]:
    results = []
    memory = build_limiter(LimitsConfig(), None, GatewayMetrics())
    results.append(await measure("memory", memory, requests, concurrency))
    await memory.aclose()
    if redis_url:
        prefix = f"fulcrum-bench:{uuid.uuid4().hex[:8]}:"
        config = RedisConfig(url=redis_url, key_prefix=prefix)
        shared = build_limiter(LimitsConfig(backend="redis"), config, GatewayMetrics())
        try:
            results.append(await measure("redis", shared, requests, concurrency))
            if not shared.up:
                raise SystemExit(f"Redis at {redis_url} did not answer; figures are invalid")
        finally:
            await shared.aclose()
            await _cleanup(redis_url, prefix)
    return results


def report(results: list[Figures], concurrency: int) -> str:
    lines = [
        "| backend | admit p50 | admit p99 | CPU/req (seq) "
        f"| throughput (c={concurrency}) | CPU/req (conc) | admit calls/req (conc) |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in results:
        calls = "—" if item.concurrent_calls is None else f"{item.concurrent_calls:.3f}"
        lines.append(
            f"| {item.backend} | {item.sequential.p50 * 1e6:.0f} µs "
            f"| {item.sequential.p99 * 1e6:.0f} µs | {item.sequential_cpu_us:.0f} µs "
            f"| {item.concurrent_rps:,.0f} req/s | {item.concurrent_cpu_us:.0f} µs | {calls} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="'' to skip")
    args = parser.parse_args(argv)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # the gateway runs on uvloop where available; so does this
        runner = asyncio.run
    results = runner(run(args.requests, args.concurrency, args.redis_url or None))
    print(report(results, args.concurrency))


if __name__ == "__main__":
    main()
