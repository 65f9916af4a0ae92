"""Deployment health: active probes on an interval plus passive marks from real traffic.

State per deployment is ``None`` (not yet known), ``True`` or ``False``. Routing treats
unknown as usable (a fresh gateway must serve), readiness requires a positive answer.
A passive failure (a timeout or refused connection seen by real traffic) only holds for a
cool-down: afterwards the deployment is tried again, so a deployment without an active probe
can never be demoted for good by one bad moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

log = logging.getLogger("fulcrum.health")

Listener = Callable[[str, bool], None]


class HealthRegistry:
    """The current health of each deployment."""

    def __init__(
        self,
        names: Iterable[str],
        listener: Listener | None = None,
        cooldown: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state: dict[str, bool | None] = dict.fromkeys(names)
        self._retry_at: dict[str, float] = {}
        self._listener = listener
        self._cooldown = cooldown
        self._clock = clock

    def mark(self, name: str, healthy: bool, *, passive: bool = False) -> None:
        """Record a health signal; a passive failure expires after the cool-down.

        A passive success (one request that worked) does not override a failure the active
        probe reported: fail-back is the probe's decision, through its hysteresis.
        """
        if healthy and passive and self._state.get(name) is False and name not in self._retry_at:
            return
        if not healthy and passive:
            self._retry_at[name] = self._clock() + self._cooldown
        else:
            self._retry_at.pop(name, None)
        previous = self._state.get(name)
        if previous is healthy:
            return
        self._state[name] = healthy
        if previous is not None or not healthy:
            log.info("deployment %s is now %s", name, "healthy" if healthy else "unhealthy")
        if self._listener is not None:
            self._listener(name, healthy)

    def state(self, name: str) -> bool | None:
        """The effective state: an expired passive failure counts as healthy again."""
        state = self._state.get(name)
        if state is False:
            retry_at = self._retry_at.get(name)
            if retry_at is not None and self._clock() >= retry_at:
                return True
        return state

    def usable(self, name: str) -> bool:
        """True unless the deployment is known to be unhealthy."""
        return self.state(name) is not False

    def snapshot(self) -> dict[str, bool | None]:
        return {name: self.state(name) for name in self._state}

    def any_healthy(self) -> bool:
        return any(self.state(name) is True for name in self._state)


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
