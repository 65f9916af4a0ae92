"""Deployment health: active probes on an interval plus passive marks from real traffic.

State per deployment is ``None`` (not yet known), ``True`` or ``False``. Routing treats
unknown as usable (a fresh gateway must serve), readiness requires a positive answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

log = logging.getLogger("fulcrum.health")

Listener = Callable[[str, bool], None]


class HealthRegistry:
    """The current health of each deployment."""

    def __init__(self, names: Iterable[str], listener: Listener | None = None) -> None:
        self._state: dict[str, bool | None] = dict.fromkeys(names)
        self._listener = listener

    def mark(self, name: str, healthy: bool) -> None:
        previous = self._state.get(name)
        if previous is healthy:
            return
        self._state[name] = healthy
        if previous is not None or not healthy:
            log.info("deployment %s is now %s", name, "healthy" if healthy else "unhealthy")
        if self._listener is not None:
            self._listener(name, healthy)

    def usable(self, name: str) -> bool:
        """True unless the deployment is known to be unhealthy."""
        return self._state.get(name) is not False

    def snapshot(self) -> dict[str, bool | None]:
        return dict(self._state)

    def any_healthy(self) -> bool:
        return any(state is True for state in self._state.values())


Probe = Callable[[], Awaitable[bool]]


class ActiveHealthChecker:
    """Probes each deployment on its own interval until stopped."""

    def __init__(self, registry: HealthRegistry, probes: Mapping[str, tuple[Probe, float]]) -> None:
        self._registry = registry
        self._probes = dict(probes)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(name, probe, interval), name=f"health:{name}")
            for name, (probe, interval) in self._probes.items()
        ]

    async def _run(self, name: str, probe: Probe, interval: float) -> None:
        while True:
            try:
                healthy = await probe()
            except Exception:  # a probe must never kill its loop
                log.exception("health probe of %s failed", name)
                healthy = False
            self._registry.mark(name, healthy)
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
