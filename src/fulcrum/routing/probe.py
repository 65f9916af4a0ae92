"""Active probe of a vLLM (OpenAI-compatible) deployment: readiness and load in one round.

``/health`` says whether it can serve (503 during a cold start); ``/metrics`` says how busy it
is. Readiness goes through hysteresis, so a deployment that just recovered is not handed all
its traffic back until it has stayed healthy for a while.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from fulcrum.routing.load import Hysteresis, LoadTracker, scrape
from fulcrum.telemetry.metrics import GatewayMetrics


class VllmProbe:
    """Callable used by ActiveHealthChecker for one deployment."""

    def __init__(
        self,
        name: str,
        check_health: Callable[[], Awaitable[bool]],
        session: Callable[[], aiohttp.ClientSession],
        metrics_url: str | None,
        timeout: float,
        max_waiting: int | None,
        load: LoadTracker,
        hysteresis: Hysteresis,
        metrics: GatewayMetrics,
    ) -> None:
        self._name = name
        self._check_health = check_health
        self._session = session
        self._metrics_url = metrics_url
        self._timeout = timeout
        self._max_waiting = max_waiting
        self._load = load
        self._hysteresis = hysteresis
        self._metrics = metrics

    async def __call__(self) -> bool:
        ready = await self._check_health()
        if ready and self._metrics_url is not None:
            reading = await scrape(self._session(), self._metrics_url, self._timeout)
            if reading is not None:
                self._load.update(self._name, reading)
                self._metrics.upstream_load.labels(self._name).set(reading.waiting)
                if self._max_waiting is not None and reading.waiting > self._max_waiting:
                    ready = False  # saturated: held back, and given traffic back gradually
        self._hysteresis.observe(self._name, ready)
        return self._hysteresis.eligible(self._name)
