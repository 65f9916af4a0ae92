"""Pass-through stack candidates: the design of ``passthrough.py`` on other libraries.

Every variant does what :mod:`bench.passthrough` does and nothing more: read the request body,
send it with the end-to-end headers to the upstream over one keep-alive pool, then relay the
response bytes chunk by chunk as they arrive, without parsing or decompressing either side.
Only the libraries change, so the rows of ``python -m bench.run --candidates`` compare stacks:

* ``aiohttp-httpx``: aiohttp server, ``httpx.AsyncClient`` upstream (``client.stream`` +
  ``aiter_raw``), on uvloop;
* ``starlette-uvicorn``: a Starlette app under uvicorn (uvloop + httptools when installed), aiohttp
  client upstream;
* granian: the same Starlette app under granian's ASGI server, started with
  ``python -m granian --interface asgi --factory bench.stacks:asgi_app_from_env`` and the
  upstream in ``BENCH_PT_UPSTREAM``.

The Starlette app routes every path to :class:`AsgiRelay`, a raw ASGI endpoint that sends the
ASGI messages itself: like ``passthrough.py``'s ``web.StreamResponse``, the lowest level the
framework offers, so the rows measure the server and the client rather than a response helper.

httpx, Starlette, uvicorn and granian live in ``.venv-candidates`` (``make bench-candidates``),
never in the project's venv, so they are imported inside the functions that need them.

Run: ``python -m bench.stacks starlette-uvicorn --port 9003 --upstream http://127.0.0.1:9001``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from bench.passthrough import HOP_BY_HOP, client_session, forwardable_pairs, run_loop, serve_app

if TYPE_CHECKING:
    import httpx

UPSTREAM_ENV = "BENCH_PT_UPSTREAM"

# ASGI types, spelled out so this module does not need an ASGI package to be imported.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Request headers never forwarded (as bytes, the form ASGI servers give them in).
_REQUEST_DROP = frozenset(name.encode("latin-1") for name in HOP_BY_HOP)
# Response headers never forwarded: the body is relayed unchanged, so Content-Length stays valid.
_RESPONSE_DROP = frozenset(name.encode("latin-1") for name in HOP_BY_HOP - {"content-length"})


def request_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """ASGI request headers (lower-case bytes) to the pairs an aiohttp client request takes."""
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw
        if name.lower() not in _REQUEST_DROP
    ]


def response_headers(raw: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """aiohttp's raw upstream response headers to ASGI ones, hop-by-hop headers dropped."""
    return [(name, value) for name, value in raw if name.lower() not in _RESPONSE_DROP]


def target_of(scope: Scope) -> str:
    """Path and query string of an ASGI request, as sent (``raw_path`` when the server has it)."""
    path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query: bytes = scope.get("query_string") or b""
    return (path + b"?" + query if query else path).decode("latin-1")


class AsgiRelay:
    """A raw ASGI endpoint relaying every request to ``upstream`` with an aiohttp client."""

    def __init__(self, upstream: str) -> None:
        self.base = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self.session = client_session()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.session is None:
            raise RuntimeError("AsgiRelay serves HTTP requests once open() has run")
        parts: list[bytes] = []
        more = True
        while more:
            message = await receive()
            parts.append(message.get("body", b""))
            more = bool(message.get("more_body"))
        body = b"".join(parts)
        async with self.session.request(
            scope["method"],
            self.base + target_of(scope),
            headers=request_headers(scope["headers"]),
            data=body if body else None,
            allow_redirects=False,
        ) as upstream_resp:
            await send(
                {
                    "type": "http.response.start",
                    "status": upstream_resp.status,
                    "headers": response_headers(upstream_resp.raw_headers),
                }
            )
            async for chunk in upstream_resp.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def starlette_app(upstream: str) -> Any:
    """Starlette: one catch-all route to an :class:`AsgiRelay`, its client opened in lifespan."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    relay = AsgiRelay(upstream)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        await relay.open()
        try:
            yield
        finally:
            await relay.close()

    return Starlette(routes=[Route("/{path:path}", relay)], lifespan=lifespan)


def asgi_app_from_env() -> Any:
    """The granian factory: :func:`starlette_app` for the upstream in ``BENCH_PT_UPSTREAM``."""
    return starlette_app(os.environ[UPSTREAM_ENV])


def httpx_client() -> httpx.AsyncClient:
    """httpx's counterpart of :func:`bench.passthrough.client_session`."""
    import httpx

    client = httpx.AsyncClient(
        timeout=httpx.Timeout(None, connect=5.0),
        limits=httpx.Limits(
            max_connections=None, max_keepalive_connections=None, keepalive_expiry=60.0
        ),
        follow_redirects=False,
        trust_env=False,  # no proxy variables: the upstream is 127.0.0.1
    )
    client.headers.clear()  # no default User-Agent / Accept / Accept-Encoding, like aiohttp's
    return client


def httpx_app(upstream: str) -> web.Application:
    """aiohttp server, httpx client: ``passthrough.build_app`` with the client swapped."""
    import httpx

    base = upstream.rstrip("/")
    client_key = web.AppKey("client", httpx.AsyncClient)

    async def open_client(app: web.Application) -> None:
        app[client_key] = httpx_client()

    async def close_client(app: web.Application) -> None:
        await app[client_key].aclose()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with request.app[client_key].stream(
            request.method,
            base + request.rel_url.raw_path_qs,
            headers=[(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP],
            content=body if body else None,
        ) as upstream_resp:
            resp = web.StreamResponse(
                status=upstream_resp.status_code,
                reason=upstream_resp.reason_phrase,
                headers=forwardable_pairs(upstream_resp.headers.multi_items()),
            )
            length = upstream_resp.headers.get("content-length")
            if length is not None:
                resp.content_length = int(length)
            await resp.prepare(request)
            async for chunk in upstream_resp.aiter_raw():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_startup.append(open_client)
    app.on_cleanup.append(close_client)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


def run_uvicorn(host: str, port: int, upstream: str) -> None:
    """Serve :func:`starlette_app` with uvicorn (uvloop + httptools if installed) until stopped."""
    import uvicorn

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    print(f"[stacks] uvicorn {uvicorn.__version__}, loop={loop}, http={http}", flush=True)
    config = uvicorn.Config(
        starlette_app(upstream),
        host=host,
        port=port,
        loop=loop,
        http=http,
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,  # the upstream's Server and Date headers are relayed, as by aiohttp
        date_header=False,
        backlog=1024,
    )
    uvicorn.Server(config).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("stack", choices=("aiohttp-httpx", "starlette-uvicorn"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9001")
    args = parser.parse_args()
    if args.stack == "aiohttp-httpx":
        run_loop(serve_app(httpx_app(args.upstream), args.host, args.port), "uvloop")
    else:
        run_uvicorn(args.host, args.port, args.upstream)


if __name__ == "__main__":
    main()
