"""The audit log end to end: gateway processes, the official SDK, a real S3 endpoint (moto).

Every answered request has exactly one record in the bucket, encrypted with SSE-KMS; bodies
appear only for tenants whose policy allows it, redacted; S3 down and a SIGKILL of the gateway
delay shipping but lose nothing that was acknowledged.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import Emulator, ServerPool, deployment, metric_value, poll_until
from tests.support.moto import BUCKET, REGION, MotoS3

KEYS = {"acme": "fulcrum-audit-acme-key-0123456789", "globex": "fulcrum-audit-globex-key-98765"}
PROMPT = "Write to ana.souza@example.com.br about card 4111 1111 1111 1111."


def _config(emulator: Emulator, moto: MotoS3, key_arn: str, spool: Path) -> dict[str, Any]:
    return {
        "deployments": {
            "vllm": deployment(
                emulator,
                tags={
                    "region": "sa-east-1",
                    "cost_per_1k_input": 0.001,
                    "cost_per_1k_output": 0.002,
                },
            )
        },
        "models": {"chat": ["vllm"]},
        "tenants": {"acme": {"audit": {"bodies": True}}, "globex": {}},
        "auth": {
            "keys": [
                {"key_sha256": hashlib.sha256(key.encode()).hexdigest(), "tenant": tenant}
                for tenant, key in KEYS.items()
            ],
            "store_keys": False,
        },
        "audit": {
            "enabled": True,
            "spool_dir": str(spool),
            "segment_max_bytes": 4096,
            "segment_max_age_seconds": 0.5,
            "ship_interval_seconds": 0.05,
            "retry_initial_seconds": 0.05,
            "retry_max_seconds": 0.25,
            "sink": {
                "type": "s3",
                "bucket": BUCKET,
                "prefix": "gateway",
                "region": REGION,
                "kms_key_id": key_arn,
                "endpoint_url": moto.endpoint,
                "max_attempts": 1,
                "connect_timeout": 1.0,
                "read_timeout": 5.0,
            },
        },
    }


def _emulator(pool: ServerPool) -> Emulator:
    return pool.emulator(
        "upstream-audit", "--no-latency", "--min-output-tokens", "4", "--max-output-tokens", "8"
    )


def test_every_request_has_one_encrypted_record_with_bodies_only_where_allowed(
    server_pool: ServerPool, moto_s3: MotoS3, tmp_path: Path
) -> None:
    moto_s3.create_bucket()
    key_arn = moto_s3.create_kms_key()
    gateway = server_pool.gateway(_config(_emulator(server_pool), moto_s3, key_arn, tmp_path))
    acme, globex = (gateway.client(api_key=KEYS[t]) for t in ("acme", "globex"))
    messages: Any = [{"role": "user", "content": PROMPT}]

    plain = acme.chat.completions.with_raw_response.create(
        model="chat", messages=messages, max_tokens=8
    )
    streamed = acme.chat.completions.with_raw_response.create(
        model="chat", messages=messages, max_tokens=8, stream=True
    )
    for _ in streamed.parse():
        pass
    other = globex.chat.completions.with_raw_response.create(
        model="chat", messages=messages, max_tokens=8
    )
    with pytest.raises(openai.NotFoundError) as missing:
        globex.chat.completions.create(model="nope", messages=messages)
    with pytest.raises(openai.AuthenticationError) as refused:
        gateway.client(api_key="not-a-key-at-all").chat.completions.create(
            model="chat", messages=messages
        )
    ids = {
        "plain": plain.headers["x-request-id"],
        "streamed": streamed.headers["x-request-id"],
        "other": other.headers["x-request-id"],
        "missing": missing.value.response.headers["x-request-id"],
        "refused": refused.value.response.headers["x-request-id"],
    }
    gateway.stop()  # a graceful stop ships what is left

    shipped = moto_s3.records()
    records = {record["request_id"]: record for record in shipped}
    assert len(records) == len(shipped)  # one record per request, never two
    assert set(ids.values()) <= set(records)

    first = records[ids["plain"]]
    usage = plain.parse().usage
    assert usage is not None
    assert first["tenant"] == "acme" and first["model"] == "chat"
    assert first["deployment"] == "vllm" and first["provider"] == "openai"
    assert first["regions"] == ["sa-east-1"] and first["status"] == 200
    assert first["usage"]["input_tokens"] == usage.prompt_tokens
    assert first["usage"]["output_tokens"] == usage.completion_tokens
    expected_cost = (usage.prompt_tokens * 0.001 + usage.completion_tokens * 0.002) / 1000
    assert first["cost_usd"] == pytest.approx(expected_cost)
    assert first["attempts"] == [{"deployment": "vllm", "outcome": "ok"}]
    assert first["latency_ms"] > 0
    # The tenant allows bodies: they are there, with the e-mail and card number masked.
    body_text = str(first["request_body"])
    assert "Write to" in body_text
    assert "ana.souza@example.com.br" not in body_text and "4111 1111 1111 1111" not in body_text
    assert first["response_body"]["choices"][0]["message"]["content"]

    stream_record = records[ids["streamed"]]
    assert stream_record["stream"] is True and stream_record["ttft_ms"] is not None
    assert stream_record["usage"]["output_tokens"] > 0
    # globex does not allow bodies.
    assert "request_body" not in records[ids["other"]]
    assert "response_body" not in records[ids["other"]]
    assert records[ids["missing"]]["status"] == 404
    assert records[ids["refused"]]["status"] == 401
    assert records[ids["refused"]]["tenant"] is None

    s3 = moto_s3.client()
    for key in moto_s3.keys(BUCKET):
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == key_arn
        assert key.startswith("gateway/year=")


async def _send(gateway_url: str, count: int) -> tuple[list[str], int]:
    """``count`` concurrent requests; the request ids of the acknowledged ones, and failures."""
    client = openai.AsyncOpenAI(
        api_key=KEYS["globex"], base_url=f"{gateway_url}/v1", max_retries=0, timeout=20
    )

    async def one() -> str | None:
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
        except (openai.APIConnectionError, openai.APIStatusError):
            return None
        raw.parse()  # the whole body arrived: the request was acknowledged
        return str(raw.headers["x-request-id"])

    try:
        results = await asyncio.gather(*(one() for _ in range(count)))
    finally:
        await client.close()
    acknowledged = [r for r in results if r is not None]
    return acknowledged, len(results) - len(acknowledged)


def test_s3_down_and_a_sigkilled_gateway_lose_no_acknowledged_record(
    server_pool: ServerPool, moto_s3: MotoS3, tmp_path: Path
) -> None:
    moto_s3.create_bucket()
    key_arn = moto_s3.create_kms_key()
    moto_s3.stop()  # S3 is down from the first request on
    emulator = _emulator(server_pool)
    config = _config(emulator, moto_s3, key_arn, tmp_path / "spool")
    gateway = server_pool.gateway(config)
    acknowledged, _ = asyncio.run(_send(gateway.url, 120))
    assert len(acknowledged) == 120
    samples = gateway.metrics()
    assert metric_value(samples, "fulcrum_audit_records_total") >= 120
    assert metric_value(samples, "fulcrum_audit_shipped_records_total") == 0

    gateway.server.process.send_signal(signal.SIGKILL)  # no graceful anything
    gateway.server.process.wait(timeout=10)

    moto_s3.start()  # moto keeps nothing: an empty S3, so bucket and key are made again
    moto_s3.create_bucket()
    new_arn = moto_s3.create_kms_key()
    config["audit"]["sink"]["kms_key_id"] = new_arn
    restarted = server_pool.gateway(config)  # same spool directory: recovers and ships
    more, _ = asyncio.run(_send(restarted.url, 10))

    expected = Counter(acknowledged + more)

    def shipped() -> Counter[str] | None:
        counts = Counter(record["request_id"] for record in moto_s3.records())
        return counts if set(expected) <= set(counts) else None

    counts = poll_until(shipped, timeout=30, interval=0.3, what="every acknowledged record in S3")
    assert all(counts[request_id] == 1 for request_id in expected), "a record was duplicated"
    assert len(acknowledged) + len(more) == len(expected)
