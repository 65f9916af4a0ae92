"""Settlements of a remote backend, applied off the request path in batches.

``put`` never waits: the request is answered while a single background task sends what has
queued up meanwhile in one script call. A batch that fails (Redis down) goes back to the
front of the queue and is retried once the backend answers again; only beyond ``capacity``
are the oldest dropped, and every drop is counted and logged (their window entries and leases
expire on their own). ``flush`` waits for everything queued so far.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from fulcrum.limits.backend import LimitBackend
from fulcrum.limits.checks import Settlement

log = logging.getLogger(__name__)

BATCH_SIZE = 256
CAPACITY = 10_000


class SettlementHealth(Protocol):
    """What the queue tells its owner (the limiter, which owns the up/down state)."""

    def may_try(self) -> bool:
        """False while the backend is known down and not yet due for a retry."""
        ...

    def succeeded(self) -> None: ...

    def failed(self, error: Exception) -> None: ...


class SettlementQueue:
    """Batches settlements for one remote backend; a single flusher task at a time."""

    def __init__(
        self,
        backend: LimitBackend,
        health: SettlementHealth,
        on_drop: Callable[[int], None],
        *,
        batch_size: int = BATCH_SIZE,
        capacity: int = CAPACITY,
    ) -> None:
        self._backend = backend
        self._health = health
        self._on_drop = on_drop
        self._batch_size = batch_size
        self._capacity = capacity
        self._pending: deque[Settlement] = deque()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, settlement: Settlement) -> None:
        if len(self._pending) >= self._capacity:
            self._pending.popleft()
            self._on_drop(1)
        self._pending.append(settlement)
        self.kick()

    def kick(self) -> None:
        """Start the flusher if there is work and none is running."""
        if self._task is None and self._pending:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self) -> None:
        """Wait until everything queued so far was sent (or put back after a failure)."""
        self.kick()
        while self._task is not None:
            await asyncio.shield(self._task)

    async def drain(self) -> None:
        """At shutdown: one last attempt at everything pending; what fails is dropped."""
        await self.flush()
        if not self._pending:
            return
        batch = list(self._pending)
        self._pending.clear()
        try:
            while batch:
                await self._backend.settle(batch[: self._batch_size])
                del batch[: self._batch_size]
        except Exception as exc:
            log.warning("rate limits: %d settlements lost at shutdown: %s", len(batch), exc)
            self._on_drop(len(batch))

    async def _run(self) -> None:
        try:
            while self._pending and self._health.may_try():
                count = min(self._batch_size, len(self._pending))
                batch = [self._pending.popleft() for _ in range(count)]
                try:
                    await self._backend.settle(batch)
                except Exception as exc:
                    self._put_back(batch)
                    self._health.failed(exc)
                    return
                self._health.succeeded()
        finally:
            self._task = None

    def _put_back(self, batch: list[Settlement]) -> None:
        room = self._capacity - len(self._pending)
        keep = batch[max(0, len(batch) - room) :] if room > 0 else []
        if len(keep) < len(batch):
            self._on_drop(len(batch) - len(keep))
        self._pending.extendleft(reversed(keep))
