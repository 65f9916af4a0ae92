"""Tenant policy end to end, with the official SDK: model allowlists, limits, budgets.

One gateway process (in-memory limits) over one no-latency vLLM emulator. Each tenant has its
own static key and a policy built for one test, so tests never share a limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.conftest import Emulator, Gateway, ServerPool, deployment, metric_value

KEYS = {
    tenant: f"fulcrum-e2e-{tenant}-key-0123456789"
    for tenant in ("narrow", "rpm", "tpm", "budget", "wide", "conc")
}
MESSAGES = [{"role": "user", "content": "Say hello."}]
#: Prices that make one request cost a known ceiling: (prompt + max_tokens) * 0.01 / 1000.
PRICE_PER_1K = 0.01


@dataclass
class TenancyStack:
    emulator: Emulator
    gateway: Gateway

    def client(self, tenant: str) -> openai.OpenAI:
        return self.gateway.client(api_key=KEYS[tenant])


@pytest.fixture(scope="module")
def tenancy(module_servers: ServerPool) -> Iterator[TenancyStack]:
    emulator = module_servers.emulator(
        "upstream-tenancy", "--no-latency", "--min-output-tokens", "4", "--max-output-tokens", "8"
    )
    config: dict[str, Any] = {
        "deployments": {
            "vllm": deployment(
                emulator,
                tags={"cost_per_1k_input": PRICE_PER_1K, "cost_per_1k_output": PRICE_PER_1K},
            )
        },
        "models": {"chat": ["vllm"], "other": ["vllm"]},
        "tenants": {
            "narrow": {"models": ["chat"]},
            "rpm": {"limits": {"rpm": 3}},
            "tpm": {"limits": {"tpm": 200}},
            "budget": {"limits": {"budget": {"daily_usd": 0.0025}}},
            "conc": {"limits": {"concurrency": 1}},
        },
        "auth": {
            "keys": [
                {"key_sha256": hashlib.sha256(key.encode()).hexdigest(), "tenant": tenant}
                for tenant, key in KEYS.items()
            ]
        },
    }
    yield TenancyStack(emulator, module_servers.gateway(config))


def _chat(client: openai.OpenAI, model: str = "chat", **params: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, max_tokens=params.pop("max_tokens", 8), **params
    )


def test_a_model_outside_the_allowlist_is_403_and_hidden_from_the_list(
    tenancy: TenancyStack,
) -> None:
    client = tenancy.client("narrow")
    assert _chat(client, "chat").http_response.status_code == 200
    with pytest.raises(openai.PermissionDeniedError) as info:
        _chat(client, "other")
    error = info.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_allowed"
    assert "other" in error["message"]
    assert [model.id for model in client.models.list()] == ["chat"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")
    # A tenant without an allowlist sees every alias.
    assert sorted(m.id for m in tenancy.client("wide").models.list()) == ["chat", "other"]


def test_rpm_refuses_the_request_over_the_limit_with_openai_headers(
    tenancy: TenancyStack,
) -> None:
    client = tenancy.client("rpm")
    admitted = [_chat(client) for _ in range(3)]
    assert [r.http_response.status_code for r in admitted] == [200, 200, 200]
    first = admitted[0].http_response.headers
    assert first["x-ratelimit-limit-requests"] == "3"
    assert first["x-ratelimit-remaining-requests"] == "2"
    assert admitted[2].http_response.headers["x-ratelimit-remaining-requests"] == "0"

    with pytest.raises(openai.RateLimitError) as info:
        _chat(client)
    response = info.value.response
    assert response.status_code == 429
    assert info.value.code == "rate_limit_exceeded"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-ratelimit-limit-requests"] == "3"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-reset-requests"].endswith("s")
    # Another tenant is not affected.
    assert _chat(tenancy.client("wide")).http_response.status_code == 200
    samples = tenancy.gateway.metrics()
    assert metric_value(samples, "fulcrum_ratelimit_rejections_total", limit="rpm") >= 1


def test_tpm_reserves_the_estimate_and_settles_the_real_usage(tenancy: TenancyStack) -> None:
    client = tenancy.client("tpm")
    # The estimate (prompt + 150) exceeds half the 200-token limit, so two such requests
    # cannot both be reserved; but each settles to its real, much smaller usage.
    first = _chat(client, max_tokens=150)
    used = first.parse().usage.total_tokens
    assert used < 60
    remaining = int(first.http_response.headers["x-ratelimit-remaining-tokens"])
    assert remaining < 200 - 150  # the reservation, not the real usage, at admission
    second = _chat(client, max_tokens=150)  # fits only because the first one settled
    assert second.http_response.status_code == 200
    with pytest.raises(openai.RateLimitError) as info:
        _chat(client, max_tokens=500)  # larger than the whole limit: can never fit
    assert info.value.code == "rate_limit_exceeded"
    assert "token" in info.value.message.lower()


def test_budget_refuses_with_insufficient_quota(tenancy: TenancyStack) -> None:
    client = tenancy.client("budget")
    statuses: list[int] = []
    for _ in range(20):
        try:
            statuses.append(_chat(client, max_tokens=8).http_response.status_code)
        except openai.RateLimitError as exc:
            assert exc.code == "insufficient_quota"
            assert isinstance(exc.body, dict) and exc.body["type"] == "insufficient_quota"
            statuses.append(429)
            break
    # Each request reserves ≥ 8 tokens * $0.01/1K = $0.00008 and really costs ~$0.0002 or
    # more, so a $0.0025 daily budget admits at least one request and refuses before 20.
    assert statuses[0] == 200
    assert statuses[-1] == 429


def test_concurrency_limit_admits_one_request_at_a_time(tenancy: TenancyStack) -> None:
    tenancy.emulator.set_faults(added_latency_ms=400)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(lambda _: _status(tenancy.client("conc")), range(4)))
    finally:
        tenancy.emulator.reset_faults()
    assert outcomes.count(200) >= 1
    assert outcomes.count(429) >= 1
    assert set(outcomes) <= {200, 429}
    # Once the slots are free again, the next request is admitted.
    assert _status(tenancy.client("conc")) == 200


def _status(client: openai.OpenAI) -> int:
    try:
        return int(_chat(client).http_response.status_code)
    except openai.RateLimitError:
        return 429
