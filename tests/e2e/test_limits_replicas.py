"""Limits shared by replicas: several gateway processes, one real Redis, the official SDK.

Accuracy: a bounded burst from several clients across three gateways admits exactly the
tenant's RPM, never more tokens than its TPM plus one request, and leaves other tenants alone.
Faults: Redis killed mid-run gives the configured behaviour (local limits, or 503) and never a
500; Redis back means shared limits again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from typing import Any

import openai
import pytest

from tests.conftest import Emulator, Gateway, ServerPool, deployment, metric_value, poll_until
from tests.support.redis import RedisServer

KEYS = {tenant: f"fulcrum-replica-{tenant}-key-0123456789" for tenant in ("a", "b", "c", "d")}
MESSAGES = [{"role": "user", "content": "Count to three."}]


def _config(
    emulator: Emulator,
    redis_url: str,
    prefix: str,
    tenants: dict[str, Any],
    on_error: str = "fail_open",
) -> dict[str, Any]:
    return {
        "deployments": {"vllm": deployment(emulator)},
        "models": {"chat": ["vllm"]},
        "tenants": tenants,
        "auth": {
            "keys": [
                {"key_sha256": hashlib.sha256(key.encode()).hexdigest(), "tenant": tenant}
                for tenant, key in KEYS.items()
            ],
            "store_keys": False,
        },
        # Generous timeouts: three replicas opening connections at once on a busy 2-core
        # machine must not be mistaken for an outage in the accuracy test.
        "redis": {
            "url": redis_url,
            "key_prefix": prefix,
            "connect_timeout": 2.0,
            "timeout": 2.0,
            "retry_interval": 0.2,
        },
        "limits": {"backend": "redis", "on_backend_error": on_error},
    }


def _emulator(pool: ServerPool) -> Emulator:
    return pool.emulator(
        "upstream-replicas", "--no-latency", "--min-output-tokens", "4", "--max-output-tokens", "8"
    )


async def _burst(
    gateways: list[Gateway], tenant: str, count: int, max_tokens: int = 8
) -> list[tuple[int, int]]:
    """``count`` concurrent requests spread over the gateways: (status, total tokens) each."""
    clients = [gw.async_client(api_key=KEYS[tenant]) for gw in gateways]

    async def one(i: int) -> tuple[int, int]:
        client = clients[i % len(clients)]
        try:
            answer = await client.chat.completions.create(
                model="chat", messages=MESSAGES, max_tokens=max_tokens
            )
        except openai.APIStatusError as exc:
            return exc.status_code, 0
        assert answer.usage is not None
        return 200, answer.usage.total_tokens

    try:
        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for client in clients:
            await client.close()


def test_a_burst_across_three_replicas_admits_exactly_the_rpm(
    server_pool: ServerPool, redis_url: str, redis_prefix: str
) -> None:
    emulator = _emulator(server_pool)
    tenants = {"a": {"limits": {"rpm": 20}}, "b": {"limits": {"rpm": 20}}}
    config = _config(emulator, redis_url, redis_prefix, tenants)
    gateways = [server_pool.gateway(config) for _ in range(3)]

    async def both() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return await asyncio.gather(_burst(gateways, "a", 90), _burst(gateways, "b", 15))

    burst_a, burst_b = asyncio.run(both())
    statuses_a = Counter(status for status, _ in burst_a)
    assert statuses_a == {200: 20, 429: 70}, statuses_a
    # The other tenant, bursting at the same time, is untouched by tenant a's limit.
    assert Counter(status for status, _ in burst_b) == {200: 15}
    # Every replica really took part, and none fell back to local limits.
    for gateway in gateways:
        samples = gateway.metrics()
        assert metric_value(samples, "fulcrum_requests_total") > 0
        assert metric_value(samples, "fulcrum_ratelimit_backend_errors_total") == 0


def test_admitted_tokens_never_exceed_the_tpm_by_more_than_one_request(
    server_pool: ServerPool, redis_url: str, redis_prefix: str
) -> None:
    emulator = _emulator(server_pool)
    tpm = 300
    config = _config(emulator, redis_url, redis_prefix, {"c": {"limits": {"tpm": tpm}}})
    gateways = [server_pool.gateway(config) for _ in range(3)]
    results = asyncio.run(_burst(gateways, "c", 60, max_tokens=24))
    admitted = [tokens for status, tokens in results if status == 200]
    assert set(status for status, _ in results) <= {200, 429}
    assert admitted, "nothing was admitted"
    assert len(admitted) < 60, "the token limit refused nothing"
    one_request = max(admitted) + 24  # a request's real tokens are below its reservation
    assert sum(admitted) <= tpm + one_request, (sum(admitted), admitted)


def test_redis_killed_mid_run_fails_open_then_shares_again(
    server_pool: ServerPool, redis_server: RedisServer
) -> None:
    emulator = _emulator(server_pool)
    tenants = {"a": {"limits": {"rpm": 6}}, "d": {"limits": {"rpm": 4}}}
    config = _config(emulator, redis_server.url, "fulcrum-kill:", tenants)
    gateways = [server_pool.gateway(config) for _ in range(2)]
    assert Counter(s for s, _ in asyncio.run(_burst(gateways, "a", 2))) == {200: 2}

    redis_server.kill()
    during = Counter(s for s, _ in asyncio.run(_burst(gateways, "a", 30)))
    # Fail open: each replica enforces the tenant's RPM on its own; no request errors out.
    assert set(during) <= {200, 429}, during
    assert 6 <= during[200] <= 2 * 6, during
    for gateway in gateways:
        samples = gateway.metrics()
        assert metric_value(samples, "fulcrum_ratelimit_backend_up") == 0
        assert metric_value(samples, "fulcrum_ratelimit_backend_errors_total", action="fail_open")

    redis_server.start()  # an empty Redis: shared counting starts afresh

    def shared_again() -> bool:
        asyncio.run(_burst(gateways, "a", 2))  # a limited tenant's request retries Redis
        return all(
            metric_value(gw.metrics(), "fulcrum_ratelimit_backend_up") == 1 for gw in gateways
        )

    poll_until(shared_again, timeout=15, interval=0.3, what="both replicas back on Redis")
    # Shared again: tenant d's 4 RPM hold across both replicas (local limits would admit 8).
    after = Counter(s for s, _ in asyncio.run(_burst(gateways, "d", 12)))
    assert after == {200: 4, 429: 8}, after


def test_redis_down_with_fail_closed_answers_503_not_500(
    server_pool: ServerPool, redis_server: RedisServer
) -> None:
    emulator = _emulator(server_pool)
    config = _config(
        emulator,
        redis_server.url,
        "fulcrum-closed:",
        {"a": {"limits": {"rpm": 100}}},
        "fail_closed",
    )
    gateway = server_pool.gateway(config)
    assert Counter(s for s, _ in asyncio.run(_burst([gateway], "a", 2))) == {200: 2}
    redis_server.kill()
    client = gateway.client(api_key=KEYS["a"])
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="chat", messages=MESSAGES, max_tokens=8)
    assert info.value.status_code == 503
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "rate_limiter_unavailable"
    assert info.value.response.headers.get("retry-after")
    # A tenant without limits never needs Redis and is still served.
    answer = gateway.client(api_key=KEYS["b"]).chat.completions.create(
        model="chat", messages=MESSAGES, max_tokens=8
    )
    assert answer.choices[0].message.content
    samples = gateway.metrics()
    assert metric_value(samples, "fulcrum_ratelimit_backend_errors_total", action="fail_closed")
    assert metric_value(samples, "fulcrum_requests_total", status="500") == 0
