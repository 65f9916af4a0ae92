"""Keeps a gateway's in-memory snapshots of the store (keys, tenants) current.

One background task per gateway polls ``store.revision()`` — one cheap query — every
``interval`` seconds and reloads every snapshot when it moved. The revision is read *before*
the reload, so a write that lands during the reload moves the revision past what was seen
and the next poll loads again: a change is never missed, at worst loaded twice. This is what
makes a revoked key stop working on every replica within about one interval.

When the store is down, the snapshots stay as they were (the gateway keeps serving with the
keys and policies it last knew), every failed poll is counted through ``on_error``, and the
outage is logged once when it starts and once when it ends — not on every poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from fulcrum.store.base import Store

log = logging.getLogger(__name__)


class Snapshot(Protocol):
    """Something that holds a copy of store data and can reload it."""

    async def reload(self) -> None: ...


class StoreSync:
    """Polls the store's revision and reloads the snapshots when it changed."""

    def __init__(
        self,
        store: Store,
        snapshots: Sequence[Snapshot],
        *,
        interval: float = 2.0,
        timeout: float = 10.0,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._snapshots = tuple(snapshots)
        self._interval = interval
        self._timeout = timeout
        self._on_error = on_error
        self._revision: int | None = None
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def revision(self) -> int | None:
        """The store revision the snapshots reflect (None before the first load)."""
        return self._revision

    @property
    def failing(self) -> bool:
        """True while the last poll failed (the snapshots may be stale)."""
        return self._failing

    async def refresh(self) -> None:
        """Load every snapshot now (start-up); unlike a poll, a failure is raised."""
        async with asyncio.timeout(self._timeout):
            revision = await self._store.revision()
            await self._reload_all()
        self._revision = revision

    async def poll(self) -> bool:
        """One poll: True when the snapshots were reloaded. Never raises (except cancel)."""
        try:
            async with asyncio.timeout(self._timeout):
                revision = await self._store.revision()
                changed = revision != self._revision
                if changed:
                    await self._reload_all()
        except Exception as exc:
            self._poll_failed(exc)
            return False
        if changed:
            self._revision = revision
        if self._failing:
            self._failing = False
            log.warning("store reachable again; keys and tenants are current")
        return changed

    def start(self) -> None:
        """Start polling in the background (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="fulcrum-store-sync")

    async def stop(self) -> None:
        """Stop polling and wait for the task to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)  # a ticker, not synchronisation
            await self.poll()

    async def _reload_all(self) -> None:
        for snapshot in self._snapshots:
            await snapshot.reload()

    def _poll_failed(self, exc: Exception) -> None:
        if self._on_error is not None:
            self._on_error()
        if not self._failing:
            self._failing = True
            reason = " ".join(str(exc).split()) or type(exc).__name__
            log.error("store poll failed, keeping the last keys and tenants: %s", reason)
