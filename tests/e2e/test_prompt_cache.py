"""The prompt cache end to end, with the official SDK against real gateway processes.

Whether the upstream was called is read from the upstream side (the gateway's attempt counter
is cross-checked against the emulator's own request counter), never inferred from the header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.conftest import Emulator, Gateway, ServerPool, deployment, metric_value, poll_until
from tests.support.redis import RedisServer

KEYS = {t: f"fulcrum-cache-{t}-key-0123456789" for t in ("acme", "globex", "private")}


def _config(emulator: Emulator, cache: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "deployments": {
            "vllm": deployment(
                emulator, tags={"cost_per_1k_input": 0.01, "cost_per_1k_output": 0.02}
            )
        },
        "models": {"chat": ["vllm"]},
        "tenants": {"private": {"cache": {"allowed": False}}},
        "auth": {
            "keys": [
                {"key_sha256": hashlib.sha256(key.encode()).hexdigest(), "tenant": tenant}
                for tenant, key in KEYS.items()
            ],
            "store_keys": False,
        },
        "cache": {"enabled": True, **cache},
        **extra,
    }


@dataclass
class CacheStack:
    emulator: Emulator
    gateway: Gateway

    def client(self, tenant: str = "acme") -> openai.OpenAI:
        return self.gateway.client(api_key=KEYS[tenant])

    def upstream_calls(self) -> float:
        return metric_value(self.emulator.metrics(), "vllm:request_success_total")


@pytest.fixture(scope="module")
def stack(module_servers: ServerPool) -> Iterator[CacheStack]:
    emulator = module_servers.emulator("upstream-cache", "--no-latency")
    yield CacheStack(emulator, module_servers.gateway(_config(emulator, {"backend": "memory"})))


def _ask(
    client: openai.OpenAI, content: str, headers: dict[str, str] | None = None, **params: Any
) -> tuple[str, str]:
    """(answer text, x-fulcrum-cache) of one non-streaming request."""
    params.setdefault("temperature", 0)
    raw = client.chat.completions.with_raw_response.create(
        model="chat",
        messages=[{"role": "user", "content": content}],
        max_tokens=12,
        extra_headers=headers,
        **params,
    )
    return raw.parse().choices[0].message.content or "", raw.headers["x-fulcrum-cache"]


def _ask_streaming(client: openai.OpenAI, content: str, **params: Any) -> tuple[str, str]:
    params.setdefault("temperature", 0)
    raw = client.chat.completions.with_raw_response.create(
        model="chat",
        messages=[{"role": "user", "content": content}],
        max_tokens=12,
        stream=True,
        **params,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    return text, raw.headers["x-fulcrum-cache"]


def _wait_stored(stack: CacheStack, count: float) -> None:
    """Stores run in the background after the answer: wait until the gateway counted them."""
    poll_until(
        lambda: (
            metric_value(stack.gateway.metrics(), "fulcrum_cache_stores_total", result="stored")
            >= count
        ),
        timeout=10,
        what=f"{count} answers stored",
    )


def _stored(stack: CacheStack) -> float:
    return metric_value(stack.gateway.metrics(), "fulcrum_cache_stores_total", result="stored")


def test_a_deterministic_request_is_served_from_the_cache_at_zero_cost(
    stack: CacheStack,
) -> None:
    client = stack.client()
    stored = _stored(stack)
    first, status = _ask(client, "What is the capital of Peru?")
    assert status == "miss"
    _wait_stored(stack, stored + 1)
    calls = stack.upstream_calls()
    cost = metric_value(stack.gateway.metrics(), "fulcrum_cost_usd_total")
    again, status = _ask(client, "What is the capital of Peru?")
    assert status == "hit"
    assert again == first
    assert stack.upstream_calls() == calls  # the emulator was not asked again
    samples = stack.gateway.metrics()
    assert metric_value(samples, "fulcrum_cost_usd_total") == pytest.approx(cost)
    assert metric_value(samples, "fulcrum_cache_saved_usd_total") > 0
    assert metric_value(samples, "fulcrum_cache_lookups_total", result="hit") >= 1


def test_answers_cross_between_streaming_and_non_streaming(stack: CacheStack) -> None:
    client = stack.client()
    stored = _stored(stack)
    plain, status = _ask(client, "Name a river in Africa.")
    assert status == "miss"
    _wait_stored(stack, stored + 1)
    streamed, status = _ask_streaming(client, "Name a river in Africa.")
    assert (streamed, status) == (plain, "hit")

    streamed_first, status = _ask_streaming(client, "Name a river in Asia.")
    assert status == "miss"
    _wait_stored(stack, stored + 2)
    calls = stack.upstream_calls()
    plain_later, status = _ask(client, "Name a river in Asia.")
    assert (plain_later, status) == (streamed_first, "hit")
    assert stack.upstream_calls() == calls


def test_what_is_not_cached(stack: CacheStack) -> None:
    client = stack.client()
    # Sampling without a seed is not deterministic: never served from the cache.
    assert _ask(client, "Tell me a story.", temperature=0.8)[1] == "bypass"
    assert _ask(client, "Tell me a story.", temperature=0.8)[1] == "bypass"
    # The client can opt out.
    assert _ask(client, "Opt out.", headers={"x-fulcrum-cache": "bypass"})[1] == "bypass"
    # A tenant whose policy forbids storing prompts never uses the cache.
    private = stack.client("private")
    assert _ask(private, "Secret plans.")[1] == "bypass"
    assert _ask(private, "Secret plans.", headers={"x-fulcrum-cache": "refresh"})[1] == "bypass"
    # An unknown directive is the client's mistake.
    with pytest.raises(openai.BadRequestError):
        _ask(client, "x", headers={"x-fulcrum-cache": "sometimes"})


def test_tenants_never_share_an_entry_and_refresh_goes_upstream(stack: CacheStack) -> None:
    stored = _stored(stack)
    _, status = _ask(stack.client("acme"), "Which ocean is largest?", seed=7)
    assert status == "miss"
    _wait_stored(stack, stored + 1)
    assert _ask(stack.client("acme"), "Which ocean is largest?", seed=7)[1] == "hit"
    assert _ask(stack.client("globex"), "Which ocean is largest?", seed=7)[1] == "miss"
    calls = stack.upstream_calls()
    refreshed = _ask(
        stack.client("acme"), "Which ocean is largest?", {"x-fulcrum-cache": "refresh"}, seed=7
    )
    assert refreshed[1] == "miss"
    assert stack.upstream_calls() == calls + 1


def test_redis_cache_is_shared_and_bypassed_when_redis_dies(
    server_pool: ServerPool, redis_server: RedisServer
) -> None:
    emulator = server_pool.emulator("upstream-cache-redis", "--no-latency")
    redis = {"url": redis_server.url, "key_prefix": "fulcrum-cache-e2e:", "retry_interval": 0.2}
    config = _config(emulator, {"backend": "redis"}, redis=redis)
    one, two = server_pool.gateway(config), server_pool.gateway(config)
    first, status = _ask(one.client(api_key=KEYS["acme"]), "Shared between replicas?")
    assert status == "miss"
    poll_until(
        lambda: metric_value(one.metrics(), "fulcrum_cache_stores_total", result="stored") >= 1,
        timeout=10,
        what="the answer stored in Redis",
    )
    # The other replica finds the answer the first one stored.
    assert _ask(two.client(api_key=KEYS["acme"]), "Shared between replicas?") == (first, "hit")

    redis_server.kill()
    answer, status = _ask(two.client(api_key=KEYS["acme"]), "Shared between replicas?")
    assert status == "bypass" and answer  # served from upstream, not an error
    samples = two.metrics()
    assert metric_value(samples, "fulcrum_cache_backend_up") == 0
    assert metric_value(samples, "fulcrum_requests_total", status="500") == 0
