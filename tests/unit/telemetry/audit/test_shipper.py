"""The shipper with a real directory sink: retries, ordering, deletion only after success, stop.

Failures are injected by wrapping the real sink (a test double for the failure only).
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from fulcrum.telemetry.audit import AuditConfig, AuditLog, DirectorySinkConfig
from fulcrum.telemetry.audit.directory import DirectorySink
from fulcrum.telemetry.audit.segment import CLOSED_SUFFIX, OPEN_SUFFIX
from fulcrum.telemetry.audit.shipper import AuditShipper, compress_segment
from fulcrum.telemetry.audit.sink import AuditSink
from fulcrum.telemetry.audit.spool import AuditSpool


def fast_shipper(spool: AuditSpool, sink: AuditSink, **options: Any) -> AuditShipper:
    """A shipper that polls and retries within milliseconds."""
    return AuditShipper(spool, sink, interval=0.05, retry_initial=0.01, retry_max=0.05, **options)


class FlakySink:
    """The real directory sink behind a switch that makes the next ``fail`` puts raise."""

    def __init__(self, inner: DirectorySink, spool_dir: Path, fail: int = 0) -> None:
        self.inner = inner
        self.spool_dir = spool_dir
        self.fail = fail
        self.attempts: list[str] = []
        self.stored: list[str] = []
        self.segments_on_disk_at_failure: list[int] = []

    def put(self, name: str, body: bytes) -> None:
        self.attempts.append(name)
        if self.fail != 0:
            self.fail -= 1
            self.segments_on_disk_at_failure.append(len(list(self.spool_dir.glob("*.jsonl"))))
            raise ConnectionError("sink unreachable")
        self.inner.put(name, body)
        self.stored.append(name)


async def poll(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.01)


def shipped_records(root: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted(root.rglob("*.jsonl.gz")):
        records.extend(
            orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()
        )
    return records


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[AuditSpool]:
    spool = AuditSpool(tmp_path / "spool", segment_max_bytes=2048)
    await spool.open()
    yield spool
    await spool.close()


@pytest.fixture
async def running() -> AsyncIterator[Callable[[AuditShipper], Awaitable[None]]]:
    shippers: list[AuditShipper] = []

    async def start(shipper: AuditShipper) -> None:
        shipper.start()
        shippers.append(shipper)

    yield start
    for shipper in shippers:
        await shipper.stop(flush=False, timeout=1.0)


async def test_retries_until_the_sink_accepts_and_deletes_only_after_success(
    spool: AuditSpool, tmp_path: Path, running: Callable[[AuditShipper], Awaitable[None]]
) -> None:
    sink = FlakySink(DirectorySink(tmp_path / "out"), spool.directory, fail=3)
    shipper = fast_shipper(spool, sink)
    await running(shipper)
    for i in range(5):
        await spool.append({"i": i})
    await spool.close_segment()
    await poll(lambda: not spool.closed_segments(), what="segment shipped")
    assert shipper.stats.failures == 3
    assert shipper.stats.uploads == 1 and shipper.stats.uploaded_records == 5
    assert sink.segments_on_disk_at_failure == [1, 1, 1]  # kept while the sink failed
    assert len(set(sink.attempts)) == 1  # every retry used the same object name
    assert not list(spool.directory.glob(f"*{CLOSED_SUFFIX}"))
    assert [r["i"] for r in shipped_records(tmp_path / "out")] == list(range(5))


async def test_no_exception_escapes_and_backoff_keeps_trying(
    spool: AuditSpool, tmp_path: Path, running: Callable[[AuditShipper], Awaitable[None]]
) -> None:
    class Exploding(FlakySink):
        def put(self, name: str, body: bytes) -> None:
            if self.fail:
                self.fail -= 1
                raise RuntimeError("a bug in some sink")
            super().put(name, body)

    sink = Exploding(DirectorySink(tmp_path / "out"), spool.directory, fail=10)
    shipper = fast_shipper(spool, sink)
    await running(shipper)
    await spool.append({"i": 0})
    await spool.close_segment()
    await poll(lambda: shipper.stats.uploads == 1, what="upload after 10 failures")
    assert shipper.stats.failures == 10
    assert shipper.stats.last_error == "RuntimeError: a bug in some sink"


async def test_ships_oldest_first_and_partitions_by_first_record_time(
    tmp_path: Path, running: Callable[[AuditShipper], Awaitable[None]]
) -> None:
    now = [1_746_107_102.0]  # 2025-05-01T13:45:02Z
    spool = AuditSpool(tmp_path / "spool", segment_max_bytes=200, clock=lambda: now[0])
    await spool.open()
    for i in range(12):
        await spool.append({"i": i, "pad": "z" * 40})
        now[0] += 600  # ten minutes apart: segments fall into several hours
    sink = FlakySink(DirectorySink(tmp_path / "out"), spool.directory)
    await running(fast_shipper(spool, sink))
    await spool.close_segment()
    await poll(lambda: spool.depth().empty, what="all shipped")
    assert sink.stored == sorted(sink.stored)  # year=/month=/…/hour=/<time> sorts by time
    hours = {name.split("/")[3] for name in sink.stored}
    assert hours == {"hour=13", "hour=14", "hour=15"}
    assert [r["i"] for r in shipped_records(tmp_path / "out")] == list(range(12))
    await spool.close()


async def test_lag_is_the_age_of_the_oldest_unshipped_record(
    tmp_path: Path, running: Callable[[AuditShipper], Awaitable[None]]
) -> None:
    now = [1_000_000.0]
    spool = AuditSpool(tmp_path / "spool", clock=lambda: now[0])
    await spool.open()
    sink = FlakySink(DirectorySink(tmp_path / "out"), spool.directory, fail=-1)  # never works
    shipper = fast_shipper(spool, sink, clock=lambda: now[0])
    assert shipper.lag() == 0.0
    await spool.append({"i": 1})
    now[0] += 30
    await spool.append({"i": 2})
    assert shipper.lag() == pytest.approx(30.0)
    await spool.close_segment()
    await running(shipper)
    await poll(lambda: shipper.stats.failures >= 2, what="failing uploads")
    assert shipper.lag() == pytest.approx(30.0)
    sink.fail = 0
    await poll(lambda: shipper.stats.uploads == 1, what="upload")
    assert shipper.lag() == 0.0
    await spool.close()


async def test_graceful_stop_ships_the_open_segment(spool: AuditSpool, tmp_path: Path) -> None:
    sink = FlakySink(DirectorySink(tmp_path / "out"), spool.directory)
    shipper = fast_shipper(spool, sink)
    shipper.start()
    await spool.append({"i": "last words"})
    await shipper.stop(flush=True, timeout=5.0)
    assert [r["i"] for r in shipped_records(tmp_path / "out")] == ["last words"]
    assert spool.depth().empty


async def test_what_stop_cannot_ship_stays_for_the_next_start(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = AuditSpool(directory)
    await spool.open()
    down = FlakySink(DirectorySink(tmp_path / "out"), directory, fail=-1)
    shipper = fast_shipper(spool, down)
    shipper.start()
    await asyncio.gather(*(spool.append({"i": i}) for i in range(20)))
    await shipper.stop(flush=True, timeout=0.3)
    await spool.close()
    assert list(directory.glob(f"*{CLOSED_SUFFIX}")) and not list(directory.glob(f"*{OPEN_SUFFIX}"))
    assert shipped_records(tmp_path / "out") == []

    spool = AuditSpool(directory)
    await spool.open()
    up = FlakySink(DirectorySink(tmp_path / "out"), directory)
    shipper = fast_shipper(spool, up)
    shipper.start()
    await poll(lambda: spool.depth().empty, what="shipped after restart")
    await shipper.stop(flush=True, timeout=1.0)
    await spool.close()
    assert sorted(r["i"] for r in shipped_records(tmp_path / "out")) == list(range(20))


def test_compression_is_deterministic(tmp_path: Path) -> None:
    path = tmp_path / "segment.jsonl"
    path.write_bytes(b'{"a":1}\n{"b":2}\n')
    first, count = compress_segment(path)
    assert count == 2
    assert compress_segment(path)[0] == first  # a retried upload sends the same bytes
    assert gzip.decompress(first) == path.read_bytes()


def test_directory_sink_is_atomic_and_idempotent(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path / "out")
    name = "year=2025/month=05/day=01/hour=13/seg.jsonl.gz"
    sink.put(name, b"one")
    sink.put(name, b"one")
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert files == [tmp_path / "out" / name]  # one object, no temporary files left
    assert files[0].read_bytes() == b"one"


@pytest.mark.parametrize("name", ["../escape.gz", "/abs.gz", "a/./b.gz", ""])
def test_directory_sink_refuses_names_outside_its_root(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        DirectorySink(tmp_path).put(name, b"x")


async def test_audit_log_from_config_end_to_end(tmp_path: Path) -> None:
    config = AuditConfig(
        enabled=True,
        spool_dir=Path("spool"),
        segment_max_bytes=4096,
        sink=DirectorySinkConfig(type="directory", path=Path("out")),
        ship_interval_seconds=0.05,
        retry_initial_seconds=0.01,
        retry_max_seconds=0.05,
    ).resolve_paths(tmp_path)
    audit = AuditLog.from_config(config, host="unit")
    assert await audit.start() == []
    await asyncio.gather(*(audit.record({"id": i, "pad": "p" * 50}) for i in range(300)))
    status = audit.status()
    assert status.spool.records == 300
    assert status.spool.batches < 300
    await audit.stop()
    assert sorted(r["id"] for r in shipped_records(tmp_path / "out")) == list(range(300))
    assert audit.status().depth.empty
    assert audit.status().shipper.uploaded_records == 300
