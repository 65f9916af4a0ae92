"""Counts requests in memory and writes them to the ledger in the background, in batches.

The hot path calls ``record(event)``: a dict lookup and a few additions, no I/O, no await, no
lock (everything runs on the event loop's thread). Every ``flush_interval`` seconds a
background task takes the pending buckets as one batch and adds them to the store in one
transaction. A failed write keeps the batch — with its id, so a write that did commit but
whose acknowledgement was lost is not counted twice when retried — and new events collect
beside it. Memory is bounded by ``max_pending`` buckets (not events: a busy bucket costs no
more than an idle one); an event that would need a new bucket beyond it is dropped, counted
in ``fulcrum_ledger_dropped_events`` and logged. Nothing here raises into the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fulcrum.store.base import Store, utc_now
from fulcrum.telemetry.ledger.aggregate import BucketKey, Totals, key_of
from fulcrum.telemetry.ledger.record import UsageEvent
from fulcrum.telemetry.ledger.storage import Batch, write_batch
from fulcrum.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 20_000  # buckets; about 1.5 KB each with a well-filled histogram


@dataclass
class LedgerStats:
    """What the writer did so far (for tests and status pages; metrics mirror it)."""

    flushes: int = 0
    write_errors: int = 0
    dropped_events: int = 0
    last_error: str | None = None


class LedgerWriter:
    """Aggregates ``UsageEvent``s per hour x tenant x model x deployment x backend x workload
    and adds them to the store's ``usage_ledger`` off the hot path."""

    def __init__(
        self,
        store: Store,
        *,
        flush_interval: float = 5.0,
        max_pending: int = DEFAULT_MAX_PENDING,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if flush_interval <= 0 or max_pending < 1:
            raise ValueError("flush_interval must be > 0 and max_pending ≥ 1")
        self.stats = LedgerStats()
        self._store = store
        self._interval = flush_interval
        self._max_pending = max_pending
        self._metrics = metrics
        self._clock = clock
        self._pending: dict[BucketKey, Totals] = {}
        self._retrying: Batch | None = None  # taken by a flush that failed; written first
        self._dropped_unreported = 0
        self._flush_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- hot path --------------------------------------------------------------------------

    def record(self, event: UsageEvent) -> None:
        """Count one finished request. Synchronous, O(1), never raises."""
        try:
            key = key_of(event)
            totals = self._pending.get(key)
            if totals is None:
                if self.pending_buckets >= self._max_pending:
                    self._drop("the ledger holds max_pending buckets")
                    return
                totals = self._pending[key] = Totals()
                self._set_gauge()
            totals.add(event)
        except Exception:  # a malformed event must not fail the request it describes
            log.exception("usage ledger: cannot count event %r", event)
            self._drop("malformed event")

    @property
    def pending_buckets(self) -> int:
        """Buckets held in memory: collecting now, plus a batch waiting to be retried."""
        retrying = len(self._retrying.buckets) if self._retrying is not None else 0
        return len(self._pending) + retrying

    # -- background ------------------------------------------------------------------------

    def start(self) -> None:
        """Start flushing every ``flush_interval`` seconds (call from the running loop)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="usage-ledger-flush"
            )

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the background task and write what is pending (within ``timeout`` seconds).

        What cannot be written by then is lost, and the loss is logged with its size.
        """
        deadline = time.monotonic() + timeout
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=timeout)  # a flush under way finishes
            if not done:
                task.cancel()
                await asyncio.wait({task})
        written = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                written = await self.flush()
        if not written and self.pending_buckets:
            log.error(
                "usage ledger: %d buckets could not be written before shutdown and are lost (%s)",
                self.pending_buckets,
                self.stats.last_error or "timed out",
            )

    async def flush(self) -> bool:
        """Write everything recorded before this call; False (logged, kept) if the store failed.

        Never raises (except cancellation): the caller is a background task or shutdown.
        """
        async with self._flush_lock:
            for _ in range(2):  # first a batch a failed flush left behind, then the new one
                if self._retrying is None:
                    if not self._pending:
                        break
                    self._retrying = Batch(uuid.uuid4().hex, self._pending)
                    self._pending = {}
                try:
                    fresh = await write_batch(self._store, self._retrying, self._clock())
                except Exception as exc:
                    self._failed(exc)
                    return False
                if not fresh:
                    log.info("usage ledger: batch %s was already written", self._retrying.batch_id)
                self._retrying = None
                self.stats.flushes += 1
                if self._metrics is not None:
                    self._metrics.ledger_flushes.inc()
            self._set_gauge()
            if self._dropped_unreported:
                log.warning(
                    "usage ledger: %d events were dropped while it was full",
                    self._dropped_unreported,
                )
                self._dropped_unreported = 0
            return True

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            if self._stopping.is_set():
                return  # stop() writes what is left
            await self.flush()

    # -- bookkeeping -----------------------------------------------------------------------

    def _failed(self, exc: Exception) -> None:
        self.stats.write_errors += 1
        self.stats.last_error = " ".join(str(exc).split()) or type(exc).__name__
        if self._metrics is not None:
            self._metrics.ledger_write_errors.inc()
        self._set_gauge()
        log.warning(
            "usage ledger: flush failed, %d buckets kept for the next one: %s",
            self.pending_buckets,
            self.stats.last_error,
        )

    def _drop(self, reason: str) -> None:
        self.stats.dropped_events += 1
        if self._metrics is not None:
            self._metrics.ledger_dropped_events.inc()
        if self._dropped_unreported == 0:
            log.warning("usage ledger: dropping events (%s); the count follows at a flush", reason)
        self._dropped_unreported += 1

    def _set_gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.ledger_pending.set(self.pending_buckets)
