"""Segment files of the audit spool: their names, their shipped object names, their repair.

A segment is a file of JSON lines. While records are appended it is *open*
(``<name>.jsonl.open``); a closed segment (``<name>.jsonl``) never changes again and waits to
be shipped. The name is fixed when the segment is created and is unique across hosts,
processes and restarts::

    <host>-<run id>-<sequence>-<first record time, UTC, ms>
    gw-7f9c-2-a1b2c3d4e5f6-00000042-20250501T134502123Z

so an upload retried after a crash (uploaded, but not yet deleted) writes the same object
again instead of a second copy: names are idempotent.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

OPEN_SUFFIX = ".jsonl.open"
CLOSED_SUFFIX = ".jsonl"
_TIME_FORMAT = "%Y%m%dT%H%M%S"
_NAME = re.compile(
    r"^(?P<host>[A-Za-z0-9._-]+)-(?P<run>[0-9a-f]{12})-(?P<seq>\d{8})-"
    r"(?P<time>\d{8}T\d{6})(?P<ms>\d{3})Z$"
)


@dataclass(frozen=True)
class Segment:
    """A closed segment waiting to be shipped."""

    path: Path
    name: str  # without suffix
    first_time: datetime  # UTC time of its first record (partitions the shipped object)
    size: int


def host_label(hostname: str | None = None) -> str:
    """The host part of segment names: the hostname with unsafe characters replaced."""
    raw = hostname if hostname is not None else socket.gethostname()
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw) or "host"


def make_name(host: str, run_id: str, seq: int, first_time: float) -> str:
    """A segment name from its creator (host, run id), sequence and first record time."""
    moment = datetime.fromtimestamp(first_time, UTC)
    millis = moment.microsecond // 1000
    return f"{host}-{run_id}-{seq:08d}-{moment.strftime(_TIME_FORMAT)}{millis:03d}Z"


def parse_time(name: str) -> datetime | None:
    """The first record time encoded in a segment name; None for a name the spool never made."""
    match = _NAME.match(name)
    if match is None:
        return None
    moment = datetime.strptime(match["time"], _TIME_FORMAT).replace(tzinfo=UTC)
    return moment.replace(microsecond=int(match["ms"]) * 1000)


def object_name(segment: Segment) -> str:
    """Date-partitioned name of the shipped object (relative to the sink's root or prefix)."""
    t = segment.first_time
    return f"year={t:%Y}/month={t:%m}/day={t:%d}/hour={t:%H}/{segment.name}{CLOSED_SUFFIX}.gz"


def segment_from_path(path: Path) -> Segment | None:
    """A closed segment file as a Segment; None when its name is not one of ours."""
    name = path.name.removesuffix(CLOSED_SUFFIX)
    first_time = parse_time(name)
    if first_time is None or not path.name.endswith(CLOSED_SUFFIX):
        return None
    return Segment(path, name, first_time, path.stat().st_size)


@dataclass(frozen=True)
class Repair:
    """What recovery did to the open segment of a process that did not close it."""

    kept: int  # complete, valid JSON lines
    dropped: int  # lines dropped: a torn last line, or invalid lines (e.g. zero-filled blocks)
    dropped_bytes: int


def repair(path: Path) -> Repair:
    """Keep only complete, valid JSON lines of ``path``, durably.

    Policy: *drop*, never repair by guessing. A record is acknowledged only after the batch
    holding it was fsync'd, so anything damaged lies after the last acknowledged record and
    was never acknowledged: a torn last line (no newline) or lines that do not parse (a
    crash can leave zero-filled blocks) are dropped and counted. When only a tail is dropped
    the file is truncated in place; otherwise the valid lines are rewritten (temp + rename).
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    kept: list[bytes] = []
    dropped = 1 if tail else 0
    for line in complete:
        if _valid_json(line):
            kept.append(line)
        else:
            dropped += 1
    new_content = b"".join(line + b"\n" for line in kept)
    if new_content != data:
        if data.startswith(new_content):
            with path.open("r+b") as file:
                file.truncate(len(new_content))
                file.flush()
                os.fsync(file.fileno())
        else:
            temp = path.with_name(path.name + ".repair")
            with temp.open("wb") as file:
                file.write(new_content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
            fsync_directory(path.parent)
    return Repair(len(kept), dropped, len(data) - len(new_content))


def _valid_json(line: bytes) -> bool:
    if not line.strip():
        return False
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def fsync_directory(directory: Path) -> None:
    """Make a file creation, rename or removal in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
