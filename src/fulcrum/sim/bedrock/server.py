"""Process lifecycle: the API runner and, with ``--admin-port``, a separate admin runner."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys

from aiohttp import web

from fulcrum.errors import UserError
from fulcrum.sim.bedrock.app import BedrockSim
from fulcrum.sim.bedrock.faults import Faults
from fulcrum.sim.bedrock.settings import Settings

SHUTDOWN_TIMEOUT = 1.0
LISTEN_BACKLOG = 1024


def _access_logger(enabled: bool) -> logging.Logger | None:
    if not enabled:
        return None
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    return logging.getLogger("aiohttp.access")


def tls_context(cert: str, key: str | None) -> ssl.SSLContext:
    """A server-side TLS context from PEM files (UserError when they cannot be loaded)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"--tls-cert/--tls-key: {exc}") from None
    return context


async def _start(
    runner: web.AppRunner, host: str, port: int, context: ssl.SSLContext | None = None
) -> None:
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG, ssl_context=context)
    try:
        await site.start()
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def serve(settings: Settings, initial_faults: Faults | None = None) -> None:
    """Run the emulator until SIGINT/SIGTERM, which drops open connections and exits."""
    sim = BedrockSim(settings)
    if initial_faults is not None:
        sim.faults.set(initial_faults)
    access_log = _access_logger(settings.access_log)
    runners: list[web.AppRunner] = []
    try:
        main_runner = web.AppRunner(
            sim.main_app(),
            handler_cancellation=True,
            access_log=access_log,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        runners.append(main_runner)
        context = tls_context(settings.tls_cert, settings.tls_key) if settings.tls_cert else None
        await _start(main_runner, settings.host, settings.port, context)
        if settings.admin_port is not None:
            admin_runner = web.AppRunner(
                sim.admin_app(), access_log=access_log, shutdown_timeout=SHUTDOWN_TIMEOUT
            )
            runners.append(admin_runner)
            await _start(admin_runner, settings.host, settings.admin_port)
        admin = (
            f", admin http://{settings.host}:{settings.admin_port}"
            if settings.admin_port is not None
            else ""
        )
        auth = "SigV4" + (" + API keys" if settings.api_keys else "") if settings.auth else "off"
        print(
            f"fulcrum sim bedrock: {len(settings.catalog.models)} models on "
            f"{'https' if context else 'http'}://{settings.host}:{settings.port}{admin} "
            f"(auth {auth})",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
