"""The usage ledger end to end: a gateway process writes it, `fulcrum usage` reads it.

What the ledger says is compared with what the clients were told (usage in each response),
on SQLite and on the real PostgreSQL. Two replicas writing one PostgreSQL ledger sum up.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from typing import Any

import openai
import pytest

from tests.conftest import Emulator, ServerPool, deployment
from tests.support.servers import fulcrum_command

KEYS = {t: f"fulcrum-ledger-{t}-key-0123456789" for t in ("acme", "globex")}
PRICE_IN, PRICE_OUT = 0.002, 0.004


def _config(emulator: Emulator, store_url: str) -> dict[str, Any]:
    return {
        "deployments": {
            "vllm": deployment(
                emulator,
                tags={
                    "self_hosted": True,
                    "cost_per_1k_input": PRICE_IN,
                    "cost_per_1k_output": PRICE_OUT,
                },
            )
        },
        "models": {"chat": ["vllm"]},
        "auth": {
            "keys": [
                {"key_sha256": hashlib.sha256(key.encode()).hexdigest(), "tenant": tenant}
                for tenant, key in KEYS.items()
            ],
            "store_keys": False,
        },
        "store": {"url": store_url},
        "cache": {"enabled": True},
        "ledger": {"flush_interval": 0.2},
    }


def _usage(store_url: str, by: str) -> list[dict[str, Any]]:
    run = subprocess.run(
        fulcrum_command("usage", "--store", store_url, "--by", by, "--format", "json"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(run.stdout)["rows"])


def _traffic(client: openai.OpenAI, count: int) -> tuple[int, int]:
    """``count`` chat requests (each a cache miss); the input and output tokens billed."""
    tokens_in = tokens_out = 0
    for i in range(count):
        answer = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": f"question {i}"}], max_tokens=6
        )
        assert answer.usage is not None
        tokens_in += answer.usage.prompt_tokens
        tokens_out += answer.usage.completion_tokens
    return tokens_in, tokens_out


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return str(request.getfixturevalue("postgres_url"))


def test_the_ledger_holds_what_the_clients_were_billed(
    server_pool: ServerPool, store_url: str
) -> None:
    emulator = server_pool.emulator("upstream-ledger", "--no-latency")
    gateway = server_pool.gateway(_config(emulator, store_url))
    acme = gateway.client(api_key=KEYS["acme"])
    acme_in, acme_out = _traffic(acme, 5)
    globex_in, globex_out = _traffic(gateway.client(api_key=KEYS["globex"]), 3)
    # One deterministic request twice: a miss, then a hit (no tokens billed, a saving).
    for _ in range(2):
        answer = acme.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "same"}], temperature=0
        )
    assert answer.usage is not None
    with pytest.raises(openai.NotFoundError):
        acme.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    gateway.stop()  # writes what is pending

    rows = {row["tenant"]: row for row in _usage(store_url, "tenant")}
    assert set(rows) == {"acme", "globex"}
    globex = rows["globex"]
    assert (globex["requests"], globex["input_tokens"], globex["output_tokens"]) == (
        3,
        globex_in,
        globex_out,
    )
    expected_cost = (globex_in * PRICE_IN + globex_out * PRICE_OUT) / 1000
    assert globex["cost_usd"] == pytest.approx(expected_cost, rel=1e-6)
    assert globex["p50_seconds"] is not None and globex["p50_seconds"] > 0
    acme_row = rows["acme"]
    # 5 + the miss + the hit + the 404
    assert acme_row["requests"] == 8
    assert acme_row["input_tokens"] == acme_in + answer.usage.prompt_tokens
    assert acme_row["output_tokens"] == acme_out + answer.usage.completion_tokens
    assert acme_row["errors"] == 1
    assert acme_row["cache_hits"] == 1
    assert acme_row["saved_usd"] > 0

    backends = {row["backend"]: row for row in _usage(store_url, "backend")}
    assert backends["self_hosted"]["requests"] == 9  # the served ones
    assert backends["none"]["requests"] == 2  # the hit and the 404 reached no upstream


def test_two_replicas_add_up_in_one_postgres_ledger(
    server_pool: ServerPool, postgres_url: str
) -> None:
    emulator = server_pool.emulator("upstream-ledger-2", "--no-latency")
    config = _config(emulator, postgres_url)
    first, second = server_pool.gateway(config), server_pool.gateway(config)
    in_1, out_1 = _traffic(first.client(api_key=KEYS["globex"]), 4)
    in_2, out_2 = _traffic(second.client(api_key=KEYS["globex"]), 6)
    first.stop()
    second.stop()
    (row,) = _usage(postgres_url, "tenant,model,deployment")
    assert (row["tenant"], row["model"], row["deployment"]) == ("globex", "chat", "vllm")
    assert row["requests"] == 10
    assert row["input_tokens"] == in_1 + in_2
    assert row["output_tokens"] == out_1 + out_2
