"""The baseline: the least work an aiohttp-based HTTP proxy can do.

It forwards the request bytes and streams the response bytes back chunk by chunk, without
parsing either, over one keep-alive ``ClientSession`` on uvloop. Whatever Fulcrum costs beyond
this row is the price of its own features (routing, parsing, usage accounting, metrics), which is
why the targets in the report are ratios against it. ``--loop asyncio`` runs the same proxy on the
stock event loop (the ``pt-aiohttp-asyncio`` stack candidate); :mod:`bench.stacks` has the
same design on other server and client libraries.

Run: ``python -m bench.passthrough --port 9002 --upstream http://127.0.0.1:9001``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

# RFC 9110 §7.6.1 connection-specific headers, plus the ones aiohttp recomputes itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


def _forwardable(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """Copy end-to-end headers (all values of repeated ones), dropping hop-by-hop ones."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in HOP_BY_HOP:
            out.add(name, value)
    return out


def forwardable_pairs(pairs: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """:func:`_forwardable` for other libraries' headers, given as (name, value) pairs."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in pairs:
        if name.lower() not in HOP_BY_HOP:
            out.add(name, value)
    return out


def client_session() -> aiohttp.ClientSession:
    """The upstream client of every aiohttp-client row: unlimited keep-alive pool, raw bytes."""
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=None)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,  # forward bytes as they are
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )


def build_app(upstream: str) -> web.Application:
    """A catch-all route that relays every request to ``upstream`` (scheme://host:port)."""
    base = upstream.rstrip("/")
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def open_session(app: web.Application) -> None:
        app[session_key] = client_session()

    async def close_session(app: web.Application) -> None:
        await app[session_key].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with request.app[session_key].request(
            request.method,
            base + request.rel_url.raw_path_qs,
            headers=_forwardable(request.headers),
            data=body if body else None,
            allow_redirects=False,
        ) as upstream_resp:
            resp = web.StreamResponse(
                status=upstream_resp.status,
                reason=upstream_resp.reason,
                headers=_forwardable(upstream_resp.headers),
            )
            if upstream_resp.content_length is not None:
                resp.content_length = upstream_resp.content_length
            await resp.prepare(request)
            async for chunk in upstream_resp.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


async def serve(host: str, port: int, upstream: str) -> None:
    """Serve until cancelled (SIGTERM/SIGINT end the process)."""
    await serve_app(build_app(upstream), host, port)


async def serve_app(app: web.Application, host: str, port: int) -> None:
    """Serve an aiohttp application the way every aiohttp pass-through row does."""
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
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
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9001")
    parser.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop (uvloop)"
    )
    args = parser.parse_args()
    run_loop(serve(args.host, args.port, args.upstream), args.loop)


def run_loop(main: Coroutine[Any, Any, None], loop: str) -> None:
    """Run ``main`` on uvloop or on the stock asyncio loop."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


if __name__ == "__main__":
    main()
