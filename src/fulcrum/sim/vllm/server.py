"""Process lifecycle: two aiohttp runners, and a main listener that can be switched off.

The inference API and the admin API run on separate runners. That separation is what makes
``refuse_connections`` real: the main site's listening socket is closed (new connects get
ECONNREFUSED from the kernel) and its open connections are closed too (pooled keep-alive
connections must not keep working), while the admin runner keeps listening so the fault can be
lifted, which re-binds the same port.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web

from fulcrum.errors import UserError
from fulcrum.sim.vllm.app import VllmSim
from fulcrum.sim.vllm.faults import Faults
from fulcrum.sim.vllm.settings import Settings

SHUTDOWN_TIMEOUT = 1.0
LISTEN_BACKLOG = 1024


class MainListener:
    """The main port's listening site, which the admin API may close and reopen."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, can_refuse: bool) -> None:
        self._runner = runner
        self._host = host
        self._port = port
        self._site: web.TCPSite | None = None
        self._lock = asyncio.Lock()
        self._can_refuse = can_refuse

    @property
    def can_refuse(self) -> bool:
        return self._can_refuse

    async def start(self) -> None:
        site = web.TCPSite(self._runner, self._host, self._port, backlog=LISTEN_BACKLOG)
        try:
            await site.start()
        except OSError as exc:
            raise UserError(
                f"cannot listen on {self._host}:{self._port}: {exc.strerror or exc}"
            ) from None
        self._site = site

    async def set_refusing(self, refusing: bool, keep: asyncio.BaseTransport | None) -> None:
        """Close (``refusing``) or reopen the main port; ``keep`` is spared from closing."""
        async with self._lock:
            if refusing and self._site is not None:
                site, self._site = self._site, None
                await site.stop()
                server = self._runner.server
                for handler in server.connections if server is not None else []:
                    transport = handler.transport
                    if transport is not None and transport is not keep:
                        transport.close()
            elif not refusing and self._site is None:
                await self.start()


def _access_logger(enabled: bool) -> logging.Logger | None:
    if not enabled:
        return None
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    return logging.getLogger("aiohttp.access")


async def serve(settings: Settings, initial_faults: Faults | None = None) -> None:
    """Run the emulator until SIGINT/SIGTERM, which drops open connections and exits."""
    sim = VllmSim(settings)
    access_log = _access_logger(settings.access_log)
    main_runner = web.AppRunner(
        sim.main_app(),
        handler_cancellation=True,
        access_log=access_log,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await main_runner.setup()
    admin_runner: web.AppRunner | None = None
    try:
        if settings.admin_port is not None:
            admin_runner = web.AppRunner(
                sim.admin_app(), access_log=access_log, shutdown_timeout=SHUTDOWN_TIMEOUT
            )
            await admin_runner.setup()
            admin_site = web.TCPSite(admin_runner, settings.host, settings.admin_port)
            try:
                await admin_site.start()
            except OSError as exc:
                raise UserError(
                    f"cannot listen on {settings.host}:{settings.admin_port}: {exc.strerror or exc}"
                ) from None
        listener = MainListener(
            main_runner, settings.host, settings.port, settings.admin_port is not None
        )
        sim.listener = listener
        if initial_faults is not None:
            sim.faults.set(initial_faults)
        if initial_faults is None or not initial_faults.refuse_connections:
            await listener.start()
        admin = (
            f", admin http://{settings.host}:{settings.admin_port}"
            if settings.admin_port is not None
            else ""
        )
        print(
            f"fulcrum sim vllm: serving {settings.served_name} on "
            f"http://{settings.host}:{settings.port}{admin}",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        # Like a killed engine: drop in-flight requests instead of draining them.
        await listener.set_refusing(True, None)
    finally:
        await main_runner.cleanup()
        if admin_runner is not None:
            await admin_runner.cleanup()
