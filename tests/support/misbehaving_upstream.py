"""A small OpenAI-compatible upstream that misbehaves on request, for the robustness tests.

Run as ``python misbehaving_upstream.py PORT MODE``. MODE is one of:

- ``gzip``: compresses responses (``Content-Encoding: gzip``) when the request's
  ``Accept-Encoding`` allows it, as OpenAI's API and most reverse proxies do;
- ``non_json``: answers a non-streaming request 200 with an HTML body;
- ``bad_usage``: reports ``usage.prompt_tokens`` as a string (streams and non-streams).
"""

from __future__ import annotations

import gzip
import json
import sys

from aiohttp import web

CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "raw-model",
    "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": "stop"}],
}
USAGE_CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "raw-model",
    "choices": [],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
COMPLETION = {
    "id": "x",
    "object": "chat.completion",
    "created": 1,
    "model": "raw-model",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def event(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def make_app(mode: str) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="")

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        stream = bool(body.get("stream"))
        wants_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
        if mode == "non_json" and not stream:
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        completion = dict(COMPLETION)
        usage_chunk = dict(USAGE_CHUNK)
        if mode == "bad_usage":
            completion["usage"] = {"prompt_tokens": "many", "completion_tokens": 2}
            usage_chunk["usage"] = {"prompt_tokens": "many", "completion_tokens": 2}
        if not stream:
            data = json.dumps(completion).encode()
            if mode == "gzip" and wants_gzip:
                return web.Response(
                    body=gzip.compress(data),
                    headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                )
            return web.Response(body=data, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        if mode == "gzip" and wants_gzip:
            response.enable_compression(web.ContentCoding.gzip)
        await response.prepare(request)
        await response.write(event(CHUNK))
        await response.write(event(usage_chunk))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.add_routes([web.get("/health", health), web.post("/v1/chat/completions", chat)])
    return app


if __name__ == "__main__":
    web.run_app(make_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), print=None)
