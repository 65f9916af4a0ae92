"""The spool: group commit, acknowledgement after sync, rotation, recovery, naming, locking."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from fulcrum.telemetry.audit.segment import (
    CLOSED_SUFFIX,
    OPEN_SUFFIX,
    Segment,
    make_name,
    object_name,
    parse_time,
)
from fulcrum.telemetry.audit.spool import (
    AuditSpool,
    SpoolClosedError,
    SpoolLockedError,
    encode_record,
)


class SyncRecorder:
    """A real fdatasync that also remembers how many bytes each file had when it was synced."""

    def __init__(self) -> None:
        self.synced_size: dict[str, int] = {}
        self.calls = 0

    def __call__(self, fd: int) -> None:
        os.fdatasync(fd)
        self.calls += 1
        self.synced_size[os.readlink(f"/proc/self/fd/{fd}")] = os.fstat(fd).st_size


@pytest.fixture
async def spool_factory(tmp_path: Path) -> AsyncIterator[Callable[..., AuditSpool]]:
    spools: list[AuditSpool] = []

    def make(directory: Path | None = None, **options: object) -> AuditSpool:
        spool = AuditSpool(directory or tmp_path / "spool", host="unit-host", **options)  # type: ignore[arg-type]
        spools.append(spool)
        return spool

    yield make
    for spool in spools:
        await spool.close()


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def open_segment(directory: Path) -> Path:
    (found,) = directory.glob(f"*{OPEN_SUFFIX}")
    return found


def all_records(directory: Path) -> list[dict[str, Any]]:
    """Every record in the spool directory, closed segments in name order, then the open one."""
    records: list[dict[str, Any]] = []
    for path in sorted(directory.glob(f"*{CLOSED_SUFFIX}")) + sorted(
        directory.glob(f"*{OPEN_SUFFIX}")
    ):
        records.extend(lines_of(path))
    return records


# -- group commit -------------------------------------------------------------------------------


async def test_concurrent_appends_share_syncs_and_return_after_their_sync(
    spool_factory: Callable[..., AuditSpool], tmp_path: Path
) -> None:
    recorder = SyncRecorder()
    spool = spool_factory(sync=recorder)
    await spool.open()
    workers, per_worker = 20, 50
    violations: list[str] = []

    async def worker(w: int) -> None:
        for i in range(per_worker):
            record = {"id": f"{w}-{i}", "pad": "x" * 64}
            await spool.append(record)
            # Acknowledged: the record's bytes must lie inside the synced prefix of the file.
            path = open_segment(tmp_path / "spool")
            data = path.read_bytes()
            end = data.index(encode_record(record)) + len(encode_record(record))
            if recorder.synced_size.get(str(path), 0) < end:
                violations.append(record["id"])

    await asyncio.gather(*(worker(w) for w in range(workers)))
    total = workers * per_worker
    assert violations == []
    assert spool.stats.records == total
    assert spool.stats.batches == recorder.calls  # one data sync per batch
    assert spool.stats.batches < total / 4, spool.stats  # group commit actually groups
    ids = [r["id"] for r in all_records(tmp_path / "spool")]
    assert sorted(ids) == sorted(f"{w}-{i}" for w in range(workers) for i in range(per_worker))


async def test_single_writer_gets_one_sync_per_record(
    spool_factory: Callable[..., AuditSpool],
) -> None:
    recorder = SyncRecorder()
    spool = spool_factory(sync=recorder)
    await spool.open()
    for i in range(5):
        await spool.append({"i": i})
    assert recorder.calls == 5


async def test_failed_sync_refuses_the_batch_and_leaves_no_torn_data(
    spool_factory: Callable[..., AuditSpool], tmp_path: Path
) -> None:
    fail_next = [False]

    def sync(fd: int) -> None:
        if fail_next[0]:
            fail_next[0] = False
            raise OSError(28, "No space left on device")
        os.fdatasync(fd)

    spool = spool_factory(sync=sync)
    await spool.open()
    await spool.append({"id": "acked-1"})
    fail_next[0] = True
    with pytest.raises(OSError, match="No space"):
        await spool.append({"id": "refused"})
    await spool.append({"id": "acked-2"})
    assert [r["id"] for r in all_records(tmp_path / "spool")] == ["acked-1", "acked-2"]
    assert spool.stats.write_errors == 1


# -- records ------------------------------------------------------------------------------------


def test_encode_record_accepts_one_json_line() -> None:
    assert encode_record({"a": "line\nbreak"}) == b'{"a":"line\\nbreak"}\n'
    assert encode_record(b'{"a":1}') == b'{"a":1}\n'
    assert encode_record(b'{"a":1}\n') == b'{"a":1}\n'


@pytest.mark.parametrize("bad", [b'{"a":1}\n{"b":2}', b"", b"  ", b'{"a":', b"not json"])
def test_encode_record_refuses_what_readers_could_not_parse(bad: bytes) -> None:
    with pytest.raises(ValueError):
        encode_record(bad)


async def test_append_outside_open_is_refused(spool_factory: Callable[..., AuditSpool]) -> None:
    spool = spool_factory()
    with pytest.raises(SpoolClosedError):
        await spool.append({"early": True})
    await spool.open()
    await spool.append({"ok": True})
    await spool.close()
    with pytest.raises(SpoolClosedError):
        await spool.append({"late": True})


# -- rotation -----------------------------------------------------------------------------------


async def test_rotates_by_size_into_unique_ordered_segments(
    spool_factory: Callable[..., AuditSpool], tmp_path: Path
) -> None:
    spool = spool_factory(segment_max_bytes=1024)
    await spool.open()
    for i in range(100):
        await spool.append({"i": i, "pad": "y" * 80})
    closed = spool.closed_segments()
    assert len(closed) >= 8
    assert all(s.size >= 1024 and s.size < 1024 + 200 for s in closed)
    names = [s.name for s in closed]
    assert len(set(names)) == len(names)
    assert names == sorted(names)  # same run: the sequence orders them
    assert [r["i"] for r in all_records(tmp_path / "spool")] == list(range(100))
    depth = spool.depth()
    assert depth.closed_segments == len(closed)
    assert depth.closed_bytes == sum(s.size for s in closed)
    assert depth.open_bytes == open_segment(tmp_path / "spool").stat().st_size


async def test_rotates_by_age_and_names_carry_the_first_record_time(
    spool_factory: Callable[..., AuditSpool],
) -> None:
    now = [1_746_107_102.123456]  # 2025-05-01T13:45:02.123Z
    spool = spool_factory(segment_max_age=60.0, clock=lambda: now[0])
    await spool.open()
    await spool.append({"n": 1})
    now[0] += 30
    await spool.append({"n": 2})
    assert await spool.rotate_if_due() is None
    assert spool.depth().oldest_time == pytest.approx(1_746_107_102.123456)
    now[0] += 31
    segment = await spool.rotate_if_due()
    assert segment is not None
    assert segment.first_time == datetime(2025, 5, 1, 13, 45, 2, 123000, tzinfo=UTC)
    assert segment.name.endswith("-20250501T134502123Z")
    assert lines_of(segment.path) == [{"n": 1}, {"n": 2}]
    assert await spool.rotate_if_due() is None  # nothing open: nothing to rotate


def test_names_are_idempotent_and_partitioned() -> None:
    name = make_name("gw-1.example", "a1b2c3d4e5f6", 42, 1_746_107_102.9999)
    assert name == "gw-1.example-a1b2c3d4e5f6-00000042-20250501T134502999Z"
    assert parse_time(name) == datetime(2025, 5, 1, 13, 45, 2, 999000, tzinfo=UTC)
    assert parse_time("someone-else.jsonl") is None
    segment = Segment(Path("/x") / name, name, parse_time(name) or datetime.now(UTC), 1)
    assert object_name(segment) == f"year=2025/month=05/day=01/hour=13/{name}.jsonl.gz"
    assert object_name(segment) == object_name(segment)  # a retry uses the same object name


async def test_each_process_start_gets_new_names(tmp_path: Path) -> None:
    names = []
    for _ in range(2):
        spool = AuditSpool(tmp_path / "spool", host="same-host", clock=lambda: 1_746_107_102.0)
        await spool.open()
        await spool.append({"x": 1})
        await spool.close()
        names.append({s.name for s in spool.closed_segments()})
    assert len(names[0] | names[1]) == 2  # same host, same clock, same sequence: still unique


# -- recovery -----------------------------------------------------------------------------------

CRASHED = "crashed-host-0123456789ab-00000007-20250501T120000000Z"


def write_crashed(directory: Path, content: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (CRASHED + OPEN_SUFFIX)
    path.write_bytes(content)
    return path


async def test_recovery_drops_a_torn_last_line(
    spool_factory: Callable[..., AuditSpool], tmp_path: Path
) -> None:
    directory = tmp_path / "spool"
    write_crashed(directory, b'{"id":1}\n{"id":2}\n{"id":3}\n{"id":4,"tr')
    spool = spool_factory(directory)
    recovered = await spool.open()
    assert [s.name for s in recovered] == [CRASHED]
    assert spool.closed_segments() == recovered
    assert lines_of(recovered[0].path) == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert recovered[0].size == len(b'{"id":1}\n{"id":2}\n{"id":3}\n')
    assert spool.stats.dropped_lines == 1
    assert not list(directory.glob(f"*{OPEN_SUFFIX}"))


async def test_recovery_drops_zero_filled_blocks(
    spool_factory: Callable[..., AuditSpool], tmp_path: Path
) -> None:
    directory = tmp_path / "spool"
    write_crashed(directory, b'{"id":1}\n' + b"\0" * 512 + b'\n{"id":2}\n' + b"\0" * 100)
    spool = spool_factory(directory)
    (segment,) = await spool.open()
    assert lines_of(segment.path) == [{"id": 1}, {"id": 2}]
    assert spool.stats.dropped_lines == 2


async def test_recovery_removes_a_segment_with_nothing_valid(
    spool_factory: Callable[..., AuditSpool], tmp_path: Path
) -> None:
    directory = tmp_path / "spool"
    write_crashed(directory, b'{"id":1,"tor')
    spool = spool_factory(directory)
    assert await spool.open() == []
    assert spool.closed_segments() == []
    assert not list(directory.glob("*.jsonl*"))


async def test_recovered_and_closed_segments_wait_oldest_first(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    first = AuditSpool(directory, host="h", clock=lambda: 1_746_110_000.0)  # 14:33Z
    await first.open()
    await first.append({"from": "graceful"})
    await first.close()  # closes its segment: waits as .jsonl
    write_crashed(directory, b'{"from":"crashed"}\n')  # 2025-05-01T12:00 is the older one
    second = AuditSpool(directory, host="h")
    await second.open()
    try:
        waiting = second.closed_segments()
        assert [lines_of(s.path)[0]["from"] for s in waiting] == ["crashed", "graceful"]
    finally:
        await second.close()


async def test_foreign_files_are_left_alone(
    spool_factory: Callable[..., AuditSpool], tmp_path: Path
) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    (directory / "notes.jsonl").write_text("not ours\n")
    (directory / "x.jsonl.open").write_text("not ours either\n")
    spool = spool_factory(directory)
    assert await spool.open() == []
    assert spool.closed_segments() == []
    assert (directory / "notes.jsonl").exists() and (directory / "x.jsonl.open").exists()


async def test_one_process_per_spool_directory(
    spool_factory: Callable[..., AuditSpool], tmp_path: Path
) -> None:
    await spool_factory().open()
    with pytest.raises(SpoolLockedError):
        await spool_factory().open()


async def test_close_seals_the_current_segment_for_the_next_start(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = AuditSpool(directory)
    await spool.open()
    await spool.append({"id": 1})
    await spool.close()
    assert not list(directory.glob(f"*{OPEN_SUFFIX}"))
    again = AuditSpool(directory)
    assert await again.open() == []  # nothing needed recovery
    assert [lines_of(s.path) for s in again.closed_segments()] == [[{"id": 1}]]
    await again.close()
