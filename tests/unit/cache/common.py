"""Helpers shared by the cache tests: requests, principals, streams through the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import orjson

from fulcrum.auth.principal import Principal
from fulcrum.config import TenantCache, TenantConfig
from fulcrum.schema.openai import Endpoint, InferenceRequest, parse_request
from fulcrum.telemetry.metrics import GatewayMetrics

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name the largest planet."},
]


def chat(**fields: Any) -> InferenceRequest:
    """A validated chat request: a deterministic one unless ``fields`` say otherwise."""
    body: dict[str, Any] = {"model": "small", "messages": MESSAGES, "temperature": 0}
    body.update(fields)
    body = {key: value for key, value in body.items() if value is not ...}
    return parse_request(Endpoint.CHAT, orjson.dumps(body))


def request(endpoint: Endpoint, body: dict[str, Any]) -> InferenceRequest:
    return parse_request(endpoint, orjson.dumps(body))


def principal(tenant: str = "acme", allowed: bool = True) -> Principal:
    policy = TenantConfig(cache=TenantCache(allowed=allowed))
    return Principal(tenant=tenant, subject=f"{tenant}-user", policy=policy)


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    """The current value of one series (0 when it was never touched)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


def sse(*chunks: dict[str, Any], done: bool = True) -> list[bytes]:
    """Chunks as SSE events, ending with ``data: [DONE]`` unless ``done`` is False."""
    events = [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks]
    return [*events, b"data: [DONE]\n\n"] if done else events


def sdk_client(events: list[bytes]) -> openai.OpenAI:
    """The official client, answering every request with ``events`` (no server involved)."""
    payload = b"".join(events)

    def answer(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=payload)

    transport = httpx2.MockTransport(answer)
    return openai.OpenAI(
        api_key="test",
        base_url="http://cache.test/v1",
        http_client=httpx2.Client(transport=transport),
    )


def sdk_chat_chunks(events: list[bytes]) -> Iterator[Any]:
    """The ``ChatCompletionChunk`` objects the SDK parses out of ``events``."""
    client = sdk_client(events)
    messages: Any = MESSAGES
    yield from client.chat.completions.create(model="small", messages=messages, stream=True)
