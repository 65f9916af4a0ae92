"""The durable local spool: audit records are on disk before the response completes.

Group commit: every ``await spool.append(record)`` joins the batch being collected; one
writer at a time writes the batch with a single ``write`` and one ``fdatasync`` in the
spool's own thread (never on the event loop), then wakes every caller of that batch. Records
that arrive while a batch is being synced form the next batch, so the number of syncs adapts
to load: under concurrency many records share one sync, alone a record costs one.

``append`` returning is the acknowledgement: the record's bytes were synced to the disk. An
``append`` that raises was not acknowledged (its bytes are truncated away again).

Segments rotate by size and by age into closed segments (see ``segment.py``); a process that
was killed leaves an open segment, which the next ``open`` repairs (torn or invalid lines are
dropped — they were never acknowledged) and closes so it is shipped like any other. A lock
file keeps two processes from sharing one spool directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from fulcrum.telemetry.audit.segment import (
    CLOSED_SUFFIX,
    OPEN_SUFFIX,
    Segment,
    fsync_directory,
    host_label,
    make_name,
    parse_time,
    repair,
    segment_from_path,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")
LOCK_FILE = "spool.lock"
DEFAULT_SEGMENT_MAX_BYTES = 8 * 1024 * 1024


class SpoolClosedError(RuntimeError):
    """The spool is not open (not yet opened, or closing): the record was not accepted."""


class SpoolLockedError(RuntimeError):
    """Another live process owns this spool directory."""


def _data_sync(fd: int) -> None:
    # fdatasync flushes the data and the file size (what reading it back needs), not mtime.
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS
        os.fsync(fd)


def encode_record(record: Mapping[str, Any] | bytes) -> bytes:
    """One JSON line (with its newline) from a mapping, or from the bytes of one JSON value."""
    if isinstance(record, bytes | bytearray | memoryview):
        line = bytes(record).removesuffix(b"\n")
        if b"\n" in line or not line.strip():
            raise ValueError("an audit record must be exactly one non-empty line")
        orjson.loads(line)  # never spool what the sink's readers could not parse
        return line + b"\n"
    return orjson.dumps(record) + b"\n"  # orjson escapes newlines inside strings


@dataclass(frozen=True)
class SpoolDepth:
    """What waits on disk: closed segments, their bytes, the open segment, the oldest record."""

    closed_segments: int
    closed_bytes: int
    open_bytes: int
    oldest_time: float | None  # epoch seconds of the oldest unshipped record; None: nothing

    @property
    def empty(self) -> bool:
        return self.closed_segments == 0 and self.open_bytes == 0


@dataclass
class SpoolStats:
    """Counters of the spool's work (read them for metrics and benchmarks)."""

    records: int = 0
    batches: int = 0
    syncs: int = 0  # every fdatasync/fsync: data batches and directory entries
    write_errors: int = 0
    recovered_segments: int = 0
    dropped_lines: int = 0  # torn or invalid lines dropped by recovery


@dataclass
class _OpenSegment:
    fd: int
    name: str
    path: Path
    first_time: float
    size: int = 0


class AuditSpool:
    """Append-only JSON-lines spool with group commit, rotation and crash recovery."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
        segment_max_age: float = 60.0,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
        sync: Callable[[int], None] = _data_sync,
    ) -> None:
        self.directory = Path(directory)
        self.stats = SpoolStats()
        self._max_bytes = segment_max_bytes
        self._max_age = segment_max_age
        self._host = host_label(host)
        self._run_id = secrets.token_hex(6)  # unique per process start: names never collide
        self._clock = clock
        self._sync = sync
        self._seq = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-spool")
        self._lock_fd: int | None = None
        self._current: _OpenSegment | None = None  # owned by the spool thread
        self._closed: list[Segment] = []  # oldest first; owned by the event loop
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._accepting = False
        self._segment_closed = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> list[Segment]:
        """Lock the directory, recover segments a crashed process left open, list what waits.

        Returns the recovered segments (already queued for shipping).
        """
        recovered, waiting = await self._run(self._open_sync)
        self._closed = waiting
        self._accepting = True
        if waiting:
            self._segment_closed.set()
        return recovered

    async def seal(self) -> None:
        """Stop accepting records, finish the pending batches, close the current segment.

        Closed segments can still be shipped and discarded until ``close``.
        """
        self._accepting = False
        while self._flusher is not None:
            await asyncio.wait({self._flusher})
        if self._lock_fd is not None:
            self._add_closed(await self._run(self._close_current))

    async def close(self) -> None:
        """Seal, then release the directory lock and the spool thread."""
        if self._lock_fd is None:
            return
        await self.seal()
        await self._run(self._unlock)
        self._executor.shutdown(wait=False)

    # -- appending ------------------------------------------------------------------------------

    async def append(self, record: Mapping[str, Any] | bytes) -> None:
        """Write one record durably; returns only after the batch holding it was synced."""
        line = encode_record(record)
        if not self._accepting:
            raise SpoolClosedError(f"audit spool {self.directory} is not accepting records")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(line)
        self._waiters.append(future)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="audit-spool-flush")
        await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                lines, waiters = self._pending, self._waiters
                self._pending, self._waiters = [], []
                try:
                    closed = await self._run(self._write_batch, lines)
                except Exception as exc:
                    self.stats.write_errors += 1
                    log.error("audit spool write failed (%d records refused): %s", len(lines), exc)
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                self.stats.records += len(lines)
                self.stats.batches += 1
                for waiter in waiters:
                    if not waiter.done():  # a cancelled caller: its record is durable anyway
                        waiter.set_result(None)
                self._add_closed(closed)
        finally:
            self._flusher = None

    # -- rotation and shipping hand-off --------------------------------------------------------

    async def rotate_if_due(self) -> Segment | None:
        """Close the current segment if it is older than the maximum age."""
        segment = await self._run(self._rotate_sync, False)
        self._add_closed(segment)
        return segment

    async def close_segment(self) -> Segment | None:
        """Close the current segment now (graceful stop: ship everything written so far)."""
        segment = await self._run(self._rotate_sync, True)
        self._add_closed(segment)
        return segment

    def closed_segments(self) -> list[Segment]:
        """Closed segments waiting to be shipped, oldest first."""
        return list(self._closed)

    async def wait_for_segment(self, timeout: float) -> None:
        """Return when a segment was closed since the last call, or after ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._segment_closed.wait(), timeout)
        self._segment_closed.clear()

    async def discard(self, segment: Segment) -> None:
        """Delete a shipped segment (only ever after its upload succeeded)."""
        await self._run(self._unlink, segment.path)
        self._closed = [item for item in self._closed if item.path != segment.path]

    def depth(self) -> SpoolDepth:
        """What waits on disk, for metrics (segments and bytes, oldest unshipped record)."""
        current = self._current
        times = [s.first_time.timestamp() for s in self._closed[:1]]
        if current is not None:
            times.append(current.first_time)
        return SpoolDepth(
            closed_segments=len(self._closed),
            closed_bytes=sum(s.size for s in self._closed),
            open_bytes=current.size if current is not None else 0,
            oldest_time=min(times) if times else None,
        )

    # -- the spool thread -----------------------------------------------------------------------

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _add_closed(self, segment: Segment | None) -> None:
        if segment is not None:
            self._closed.append(segment)
            self._segment_closed.set()

    def _open_sync(self) -> tuple[list[Segment], list[Segment]]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock()
        recovered: list[Segment] = []
        for path in sorted(self.directory.glob(f"*{OPEN_SUFFIX}")):
            segment = self._recover(path)
            if segment is not None:
                recovered.append(segment)
        for stale in self.directory.glob("*.repair"):
            stale.unlink()
        waiting = []
        for path in self.directory.glob(f"*{CLOSED_SUFFIX}"):
            segment = segment_from_path(path)
            if segment is None:
                log.warning("audit spool: ignoring foreign file %s", path)
            else:
                waiting.append(segment)
        waiting.sort(key=lambda s: (s.first_time, s.name))
        return recovered, waiting

    def _recover(self, path: Path) -> Segment | None:
        name = path.name.removesuffix(OPEN_SUFFIX)
        if parse_time(name) is None:
            log.warning("audit spool: ignoring foreign file %s", path)
            return None
        result = repair(path)
        self.stats.recovered_segments += 1
        self.stats.dropped_lines += result.dropped
        if result.dropped:
            log.warning(
                "audit spool: recovered %s: kept %d records, dropped %d torn/invalid lines",
                path.name,
                result.kept,
                result.dropped,
            )
        if result.kept == 0:
            self._unlink(path)
            return None
        closed = path.with_name(name + CLOSED_SUFFIX)
        os.replace(path, closed)
        fsync_directory(self.directory)
        return segment_from_path(closed)

    def _lock(self) -> None:
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolLockedError(
                f"audit spool {self.directory} is used by another process"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _create(self) -> _OpenSegment:
        now = self._clock()
        self._seq += 1
        name = make_name(self._host, self._run_id, self._seq, now)
        path = self.directory / (name + OPEN_SUFFIX)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        fsync_directory(self.directory)  # the file itself must survive a crash
        self.stats.syncs += 1
        self._current = _OpenSegment(fd, name, path, now)
        return self._current

    def _write_batch(self, lines: list[bytes]) -> Segment | None:
        current = self._current or self._create()
        data = b"".join(lines)
        try:
            view = memoryview(data)
            while view:
                written = os.write(current.fd, view)
                view = view[written:]
            self._sync(current.fd)
            self.stats.syncs += 1
        except OSError:
            self._undo(current)
            raise
        current.size += len(data)
        if current.size >= self._max_bytes:
            return self._close_current()
        return None

    def _undo(self, current: _OpenSegment) -> None:
        """Remove a failed batch so no later record follows a torn line."""
        try:
            os.ftruncate(current.fd, current.size)
            self._sync(current.fd)
        except OSError as exc:
            log.error("audit spool: cannot truncate %s after a failed write: %s", current.path, exc)
            self._current = None
            with contextlib.suppress(OSError):  # left on disk: the next start repairs it
                os.close(current.fd)

    def _rotate_sync(self, force: bool) -> Segment | None:
        current = self._current
        if current is None:
            return None
        if force or self._clock() - current.first_time >= self._max_age:
            return self._close_current()
        return None

    def _close_current(self) -> Segment | None:
        current = self._current
        if current is None:
            return None
        self._current = None
        os.close(current.fd)
        if current.size == 0:
            self._unlink(current.path)
            return None
        closed = current.path.with_name(current.name + CLOSED_SUFFIX)
        os.replace(current.path, closed)
        fsync_directory(self.directory)
        self.stats.syncs += 1
        return segment_from_path(closed)

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_directory(self.directory)
