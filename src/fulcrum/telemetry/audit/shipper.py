"""Ships closed spool segments to a sink, oldest first; deletes a segment only once stored.

A background task: rotates the spool's current segment when it is due, gzips each closed
segment (deterministically, so a retried upload sends identical bytes), puts it into the
sink in a worker thread and only then deletes it. A failure — S3 unreachable, a full disk,
any exception — is counted and logged, and the same segment is retried after a capped
exponential backoff; nothing escapes the task, and the gateway keeps serving while segments
wait on disk.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from fulcrum.telemetry.audit.segment import Segment, object_name
from fulcrum.telemetry.audit.sink import AuditSink
from fulcrum.telemetry.audit.spool import AuditSpool

log = logging.getLogger(__name__)


@dataclass
class ShipperStats:
    """Counters of shipping, for metrics."""

    uploads: int = 0
    uploaded_records: int = 0
    uploaded_bytes: int = 0  # compressed
    failures: int = 0
    last_error: str | None = None


def compress_segment(path: Path) -> tuple[bytes, int]:
    """The gzip'd bytes of a segment file (mtime 0: same input, same bytes) and its lines."""
    data = path.read_bytes()
    return gzip.compress(data, compresslevel=6, mtime=0), data.count(b"\n")


class AuditShipper:
    """Background task moving closed segments from an ``AuditSpool`` to an ``AuditSink``."""

    def __init__(
        self,
        spool: AuditSpool,
        sink: AuditSink,
        *,
        interval: float = 1.0,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stats = ShipperStats()
        self._spool = spool
        self._sink = sink
        self._interval = interval
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._clock = clock
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start shipping in the background (the spool must be open)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="audit-shipper")

    @property
    def running(self) -> bool:
        """True while the background task is alive (it only ends through ``stop``)."""
        return self._task is not None and not self._task.done()

    async def stop(self, flush: bool = True, timeout: float = 10.0) -> None:
        """Stop the task; with ``flush``, close the current segment and ship until ``timeout``.

        What is not shipped by then stays on disk and is shipped by the next start.
        """
        deadline = time.monotonic() + timeout
        task, self._task = self._task, None
        self._stopping.set()
        if task is not None:
            # Let an upload in progress finish rather than abandon it halfway.
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                task.cancel()
                await asyncio.wait({task})
        if not flush:
            return
        try:
            await self._spool.close_segment()
            await asyncio.wait_for(self._drain(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            left = self._spool.depth()
            log.warning(
                "audit shipper: stop timeout, %d segments (%d bytes) stay in %s",
                left.closed_segments,
                left.closed_bytes,
                self._spool.directory,
            )
        except Exception as exc:
            log.warning("audit shipper: final flush failed, segments stay on disk: %s", exc)

    def lag(self) -> float:
        """Age in seconds of the oldest record not yet shipped (0 when nothing waits)."""
        oldest = self._spool.depth().oldest_time
        return 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    async def ship_pending(self) -> int:
        """Ship every closed segment, oldest first; raises on the first failure."""
        shipped = 0
        for segment in self._spool.closed_segments():
            await self._ship(segment)
            shipped += 1
        return shipped

    async def _ship(self, segment: Segment) -> None:
        try:
            body, records = await asyncio.to_thread(compress_segment, segment.path)
        except FileNotFoundError:
            log.error("audit shipper: segment %s vanished from the spool", segment.path)
            await self._spool.discard(segment)
            return
        await asyncio.to_thread(self._sink.put, object_name(segment), body)
        await self._spool.discard(segment)  # only now: the sink has it
        self.stats.uploads += 1
        self.stats.uploaded_records += records
        self.stats.uploaded_bytes += len(body)

    async def _loop(self) -> None:
        delay = self._retry_initial
        while not self._stopping.is_set():
            try:
                await self._spool.rotate_if_due()
                await self.ship_pending()
            except Exception as exc:
                self._failed(exc)
                await self._until_stopped(asyncio.sleep(delay))
                delay = min(delay * 2, self._retry_max)
                continue
            delay = self._retry_initial
            await self._until_stopped(self._spool.wait_for_segment(self._interval))

    async def _drain(self) -> None:
        """Ship until nothing closed is left, retrying failures with backoff (for ``stop``)."""
        delay = self._retry_initial
        while self._spool.closed_segments():
            try:
                await self.ship_pending()
            except Exception as exc:
                self._failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)

    def _failed(self, exc: Exception) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        waiting = self._spool.depth()
        log.warning(
            "audit shipper: upload failed (%s); %d segments wait, retrying",
            self.stats.last_error,
            waiting.closed_segments,
        )

    async def _until_stopped(self, waiting: Awaitable[None]) -> None:
        """Await ``waiting``, but return early when ``stop`` is called."""
        work = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        for future in (work, stop):
            future.cancel()
        await asyncio.gather(work, stop, return_exceptions=True)
