"""The prompt cache in Redis: shared by every replica, one GET per lookup, one SET per store.

Entries live under ``key_prefix + "cache:"`` and expire by themselves (``SET ... PX ttl``), so
the cache needs no sweeping and Redis's own ``maxmemory`` policy can evict under pressure.

Redis is an optimisation here, never a dependency: any failure (refused connection, timeout,
a pool that is full for longer than a command may take) makes that lookup a bypass and that
store a no-op, is counted in ``fulcrum_cache_errors``, and marks Redis down. While it is down,
calls are not attempted at all, except one probe every ``retry_interval`` (see
:mod:`fulcrum.cache.outage`), so an outage never costs each request a timeout. The client is
set up like the rate limiter's: short timeouts, no automatic retries, a bounded pool behind a
FIFO semaphore (see ``fulcrum.limits.redis_backend`` for why).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from fulcrum.cache.outage import Outage
from fulcrum.config import RedisConfig
from fulcrum.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 64
_FAULTS = (RedisError, OSError)  # OSError covers TimeoutError (ours and the socket's)


class RedisCache:
    """Implements :class:`fulcrum.cache.backend.CacheBackend` over one Redis."""

    def __init__(
        self,
        client: Redis,
        key_prefix: str,
        ttl: float,
        max_entry_bytes: int,
        *,
        metrics: GatewayMetrics,
        retry_interval: float = 1.0,
        deadline: float = 1.0,
        max_in_flight: int = DEFAULT_MAX_CONNECTIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_entry_bytes <= 0:
            raise ValueError("ttl and max_entry_bytes must be positive")
        self.client = client
        self.base = f"{key_prefix}cache:"
        self.ttl_ms = max(1, round(ttl * 1000))
        self.max_entry_bytes = max_entry_bytes
        self.deadline = deadline  # bound on one call, waiting for a connection included
        self._gate = asyncio.Semaphore(max_in_flight)
        self._lookup_errors = metrics.cache_errors.labels("lookup")
        self._store_errors = metrics.cache_errors.labels("store")
        up = metrics.cache_backend_up
        up.set(1)
        self._outage = Outage(
            "prompt cache: Redis",
            retry_interval,
            log,
            clock=clock,
            on_change=lambda is_up: up.set(1 if is_up else 0),
        )

    @classmethod
    def from_config(
        cls,
        config: RedisConfig,
        ttl: float,
        max_entry_bytes: int,
        metrics: GatewayMetrics,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> RedisCache:
        """A client with short timeouts and no retries; no connection is made until used."""
        pool = BlockingConnectionPool.from_url(
            config.url,
            max_connections=max_connections,
            timeout=config.timeout,
            socket_connect_timeout=config.connect_timeout,
            socket_timeout=config.timeout,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(
            Redis.from_pool(pool),
            config.key_prefix,
            ttl,
            max_entry_bytes,
            metrics=metrics,
            retry_interval=config.retry_interval,
            deadline=config.connect_timeout + 2 * config.timeout,
            max_in_flight=max_connections,
        )

    @property
    def available(self) -> bool:
        return self._outage.up

    async def get(self, key: str) -> bytes | None:
        if not self._outage.may_try():
            self._lookup_errors.inc()
            return None
        try:
            async with asyncio.timeout(self.deadline), self._gate:
                value = await self.client.get(self.base + key)
        except _FAULTS as exc:
            self._outage.failed(exc)
            self._lookup_errors.inc()
            return None
        self._outage.succeeded()
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes) -> bool:
        if len(value) > self.max_entry_bytes:
            return False
        if not self._outage.may_try():
            self._store_errors.inc()
            return False
        try:
            async with asyncio.timeout(self.deadline), self._gate:
                await self.client.set(self.base + key, value, px=self.ttl_ms)
        except _FAULTS as exc:
            self._outage.failed(exc)
            self._store_errors.inc()
            return False
        self._outage.succeeded()
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
