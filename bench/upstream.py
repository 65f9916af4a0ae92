"""A minimal, fast OpenAI-compatible upstream for the benchmark.

Every response body is built once at start-up, so the upstream spends as little CPU as possible
per request: the benchmark measures the proxies, and this process shares a core with the load
generator. Streaming answers are exactly 64 content chunks, then one usage chunk when the
request asked for ``stream_options.include_usage`` (as the gateway does), then ``[DONE]``.

Like a real model server, the first chunk is followed by a pause (``--first-chunk-gap-ms``,
5 ms by default) and the other chunks come in a burst. The pause keeps the first chunk alone on
the wire, so time-to-first-chunk measures one chunk's trip through a proxy, not a batch of
them; the burst then makes the proxy's per-chunk cost show in the time to the last chunk.

Run: ``python -m bench.upstream --port 9001 --model bench-model``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

STREAM_CHUNKS = 64
PROMPT_TOKENS = 8
_COMPLETION_ID = "chatcmpl-bench0000000000000000"


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class Bodies:
    """Pre-serialised response bodies for one model id."""

    def __init__(self, model: str, chunks: int = STREAM_CHUNKS) -> None:
        created = int(time.time())
        self.completion = orjson.dumps(
            {
                "id": _COMPLETION_ID,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello from the bench."},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": 6,
                    "total_tokens": PROMPT_TOKENS + 6,
                },
            }
        )
        self.chunks: list[bytes] = []
        for i in range(chunks):
            delta: dict[str, str] = {"content": f"t{i} "}
            if i == 0:
                delta = {"role": "assistant", **delta}
            self.chunks.append(
                _sse(
                    {
                        "id": _COMPLETION_ID,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "delta": delta,
                                "logprobs": None,
                                "finish_reason": "stop" if i == chunks - 1 else None,
                            }
                        ],
                    }
                )
            )
        self.usage_chunk = _sse(
            {
                "id": _COMPLETION_ID,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": chunks,
                    "total_tokens": PROMPT_TOKENS + chunks,
                },
            }
        )
        self.done = b"data: [DONE]\n\n"
        self.models = orjson.dumps(
            {
                "object": "list",
                "data": [{"id": model, "object": "model", "created": created, "owned_by": "bench"}],
            }
        )


def build_app(model: str, first_chunk_gap: float = 0.005) -> web.Application:
    """The upstream's routes: chat completions, a model list, and a health check."""
    bodies = Bodies(model)

    async def chat(request: web.Request) -> web.StreamResponse:
        try:
            req = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.Response(status=400, body=b'{"error":{"message":"bad json"}}')
        if not isinstance(req, dict) or not req.get("stream"):
            return web.Response(body=bodies.completion, content_type="application/json")
        options = req.get("stream_options") or {}
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        first, *rest = bodies.chunks
        await resp.write(first)
        if first_chunk_gap > 0:
            await asyncio.sleep(first_chunk_gap)
        for chunk in rest:  # one write per chunk: a real server emits them one by one
            await resp.write(chunk)
        if include_usage:
            await resp.write(bodies.usage_chunk)
        await resp.write(bodies.done)
        await resp.write_eof()
        return resp

    async def models(_: web.Request) -> web.Response:
        return web.Response(body=bodies.models, content_type="application/json")

    async def health(_: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=VLLM_METRICS, content_type="text/plain")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app


# What a lightly loaded vLLM exports: lets the routed row scrape and parse real metrics text.
VLLM_METRICS = b"""# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="bench-model"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="bench-model"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="bench-model"} 0.12
"""


async def serve(host: str, port: int, model: str, first_chunk_gap: float = 0.005) -> None:
    """Serve until cancelled (SIGTERM/SIGINT end the process)."""
    runner = web.AppRunner(build_app(model, first_chunk_gap), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="bench-model")
    parser.add_argument(
        "--first-chunk-gap-ms",
        type=float,
        default=5.0,
        help="pause after the first streamed chunk (0: none)",
    )
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.host, args.port, args.model, args.first_chunk_gap_ms / 1000))


if __name__ == "__main__":
    main()
