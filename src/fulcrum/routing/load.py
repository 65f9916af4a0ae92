"""How busy each vLLM deployment is: for least-busy routing and to skip saturated ones.

Two sources, because each alone misleads:

- the gateway's own in-flight count reacts at once, but knows nothing of the traffic other
  gateway replicas (or other clients) put on the same server;
- vLLM's ``/metrics`` (requests running and waiting, KV-cache usage) sees all traffic, but
  only as of the last scrape, so a reading older than ``stale_after`` is ignored.

:class:`Hysteresis` damps fail-back: a deployment skipped for being unready or saturated comes
back only after a run of good observations and a minimum hold time, so traffic does not flap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = "vllm:kv_cache_usage_perc"
#: The name vLLM used for the same gauge before ``kv_cache_usage_perc``; read only without it.
KV_CACHE_LEGACY = "vllm:gpu_cache_usage_perc"


@dataclass(frozen=True, slots=True)
class VllmLoad:
    """One scrape of a vLLM server: requests running and waiting, KV-cache usage in 0..1."""

    running: float
    waiting: float
    kv_cache_usage: float


def parse_vllm_metrics(text: str) -> VllmLoad | None:
    """Read the load gauges from a Prometheus text exposition; None if it does not parse.

    Running and waiting are summed over label sets (one per engine of a data-parallel
    server); KV-cache usage is a fraction, so the fullest engine's value is taken instead of
    a sum. A missing series reads as 0; non-finite samples are ignored.
    """
    sums = {RUNNING: 0.0, WAITING: 0.0}
    kv: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                value = float(sample.value)
                if not math.isfinite(value):
                    continue
                if sample.name in sums:
                    sums[sample.name] += value
                elif sample.name in (KV_CACHE, KV_CACHE_LEGACY):
                    kv[sample.name] = max(kv.get(sample.name, 0.0), value)
    except (ValueError, IndexError, TypeError):
        return None
    return VllmLoad(
        running=sums[RUNNING],
        waiting=sums[WAITING],
        kv_cache_usage=kv.get(KV_CACHE, kv.get(KV_CACHE_LEGACY, 0.0)),
    )


async def scrape(session: aiohttp.ClientSession, url: str, timeout: float) -> VllmLoad | None:
    """GET one ``/metrics`` URL; any failure (network, status, timeout, body) gives None."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status != 200:
                return None
            body = await response.read()
    except (TimeoutError, aiohttp.ClientError):
        return None
    return parse_vllm_metrics(body.decode("utf-8", errors="replace"))


class LoadTracker:
    """In-flight counts and the latest fresh scrape per deployment, folded into one score.

    ``score = in_flight + waiting + running_weight * running``, lower is less busy. A waiting
    request means the server's batch is already full, so a new one would queue behind it: it
    weighs 1. A running request is making progress and only shares the batch: it weighs
    ``running_weight`` (default 0.5). The gateway's own requests appear in both its in-flight
    count and (after the next scrape) vLLM's gauges; the double count is the same for every
    replica it fronts, and the in-flight term is what keeps a burst between two scrapes from
    all landing on the replica that looked idle at the last one. A missing or stale scrape
    contributes nothing.
    """

    def __init__(
        self,
        stale_after: float = 10.0,
        running_weight: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stale_after = stale_after
        self._running_weight = running_weight
        self._clock = clock
        self._in_flight: dict[str, int] = {}
        self._scrapes: dict[str, tuple[float, VllmLoad]] = {}

    def begin(self, name: str) -> None:
        """A request to ``name`` started."""
        self._in_flight[name] = self._in_flight.get(name, 0) + 1

    def end(self, name: str) -> None:
        """A request to ``name`` ended (however it ended). Never goes below zero."""
        count = self._in_flight.get(name, 0) - 1
        if count > 0:
            self._in_flight[name] = count
        else:
            self._in_flight.pop(name, None)

    def in_flight(self, name: str) -> int:
        return self._in_flight.get(name, 0)

    def update(self, name: str, load: VllmLoad) -> None:
        """Store a scrape of ``name``, stamped now. A failed scrape is simply not stored."""
        self._scrapes[name] = (self._clock(), load)

    def latest(self, name: str) -> VllmLoad | None:
        """The last scrape, unless it is older than ``stale_after`` seconds."""
        entry = self._scrapes.get(name)
        if entry is None:
            return None
        at, load = entry
        if self._clock() - at > self._stale_after:
            return None
        return load

    def score(self, name: str) -> float:
        """How busy ``name`` is, for least-busy ordering (see the class docstring)."""
        score = float(self.in_flight(name))
        load = self.latest(name)
        if load is not None:
            score += load.waiting + self._running_weight * load.running
        return score

    def saturated(self, name: str, max_waiting: float) -> bool:
        """True when a fresh scrape shows more than ``max_waiting`` requests queued."""
        load = self.latest(name)
        return load is not None and load.waiting > max_waiting


class Hysteresis:
    """Fail-back damping: bad at once, good again only after it has stayed good a while.

    A bad observation makes a deployment ineligible immediately and restarts its hold. It is
    eligible again once it has had ``recover_after`` good observations in a row *and*
    ``min_hold`` seconds have passed since its last bad one. Deployments never observed bad
    are eligible.
    """

    def __init__(
        self,
        recover_after: int = 3,
        min_hold: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if recover_after < 1:
            raise ValueError("recover_after must be at least 1")
        self._recover_after = recover_after
        self._min_hold = min_hold
        self._clock = clock
        # Only deployments currently held back: name -> (time of last bad, good streak).
        self._held: dict[str, tuple[float, int]] = {}

    def observe(self, name: str, ok: bool) -> None:
        if not ok:
            self._held[name] = (self._clock(), 0)
            return
        held = self._held.get(name)
        if held is None:
            return
        bad_at, streak = held
        self._held[name] = (bad_at, streak + 1)
        if self.eligible(name):
            del self._held[name]

    def eligible(self, name: str) -> bool:
        held = self._held.get(name)
        if held is None:
            return True
        bad_at, streak = held
        return streak >= self._recover_after and self._clock() - bad_at >= self._min_hold
