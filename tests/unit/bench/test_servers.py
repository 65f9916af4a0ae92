"""The bench upstream and pass-through proxy, in-process on an ephemeral port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from bench import passthrough, upstream


@pytest.fixture
async def upstream_client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(upstream.build_app("m", first_chunk_gap=0))) as client:
        yield client


def _events(body: bytes) -> list[bytes]:
    return [e.removeprefix(b"data: ") for e in body.split(b"\n\n") if e]


async def test_plain_completion_has_usage(
    upstream_client: TestClient[web.Request, web.Application],
) -> None:
    resp = await upstream_client.post("/v1/chat/completions", json={"model": "m"})
    data = await resp.json()
    assert data["object"] == "chat.completion"
    assert data["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("include_usage", [False, True])
async def test_stream_has_64_content_chunks(
    upstream_client: TestClient[web.Request, web.Application], include_usage: bool
) -> None:
    payload: dict[str, object] = {"model": "m", "stream": True}
    if include_usage:
        payload["stream_options"] = {"include_usage": True}
    resp = await upstream_client.post("/v1/chat/completions", json=payload)
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = _events(await resp.read())
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    content = [c for c in chunks if c["choices"]]
    assert len(content) == upstream.STREAM_CHUNKS
    usage = [c for c in chunks if c.get("usage")]
    assert len(usage) == (1 if include_usage else 0)


async def test_passthrough_relays_streams_byte_for_byte(
    upstream_client: TestClient[web.Request, web.Application],
) -> None:
    origin = str(upstream_client.make_url("/")).rstrip("/")
    proxy_app = passthrough.build_app(origin)
    async with TestClient(TestServer(proxy_app)) as proxy:
        payload = {"model": "m", "stream": True}
        direct = await (await upstream_client.post("/v1/chat/completions", json=payload)).read()
        relayed = await proxy.post("/v1/chat/completions", json=payload)
        assert relayed.status == 200
        assert await relayed.read() == direct
        health = await proxy.get("/health")
        assert health.status == 200
