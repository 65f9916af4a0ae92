"""Measured usage: the seam between the gateway's usage ledger and the decision engine.

The engine reads hourly token volumes through :class:`UsageSource`; it never knows where they
are stored. Two sources live here — a file (``--usage FILE``) and memory (tests) — and
:func:`ledger_source` reads the gateway's usage ledger (``--from-ledger``).

File format (CSV with a header, or JSON lines), one row per hour x workload x backend::

    hour,workload,backend,tokens
    2026-03-01T09:00:00Z,interactive,bedrock,1250000
    {"hour": "2026-03-01T09:00:00Z", "workload": "batch", "backend": "self_hosted", "tokens": 8}

``hour`` is ISO 8601 (UTC if no offset; truncated to the start of its hour), ``workload`` is
``interactive`` or ``batch``, ``backend`` is ``bedrock``, ``self_hosted`` or a deployment name,
``tokens`` is billed input + output tokens, an integer ≥ 0.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

from fulcrum.errors import UserError

WORKLOADS = ("interactive", "batch")
FIELDS = ("hour", "workload", "backend", "tokens")


@dataclass(frozen=True)
class HourlyVolume:
    """Tokens of one workload on one backend during one hour (UTC, start of the hour)."""

    hour: datetime
    workload: str
    backend: str
    tokens: int


class UsageSource(Protocol):
    """Anything that can answer "how many tokens, per hour, between these two instants"."""

    def hourly_volume(self, since: datetime, until: datetime) -> list[HourlyVolume]:
        """Rows with ``since <= hour < until``, sorted by hour."""
        ...


class MemoryUsageSource:
    """A usage source over rows held in memory (tests, and a parsed file)."""

    def __init__(self, rows: Iterable[HourlyVolume]) -> None:
        self._rows = sorted(rows, key=lambda row: row.hour)

    def hourly_volume(self, since: datetime, until: datetime) -> list[HourlyVolume]:
        """Rows with ``since <= hour < until``."""
        return [row for row in self._rows if since <= row.hour < until]

    def latest(self) -> datetime | None:
        """The last hour with data (the "now" of a usage file)."""
        return self._rows[-1].hour if self._rows else None


def parse_hour(text: str, where: str) -> datetime:
    """ISO 8601 → an aware UTC datetime truncated to the hour."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{where}: hour: not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _row(record: dict[str, Any], where: str) -> HourlyVolume:
    missing = [name for name in FIELDS if record.get(name) in (None, "")]
    if missing:
        raise UserError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise UserError(f"{where}: {unknown[0]}: unknown key")
    workload = str(record["workload"])
    if workload not in WORKLOADS:
        raise UserError(f"{where}: workload: must be interactive or batch, not {workload!r}")
    try:
        tokens = int(str(record["tokens"]))
    except ValueError:
        raise UserError(f"{where}: tokens: not an integer: {record['tokens']!r}") from None
    if tokens < 0:
        raise UserError(f"{where}: tokens: must be ≥ 0")
    return HourlyVolume(
        hour=parse_hour(str(record["hour"]), where),
        workload=workload,
        backend=str(record["backend"]),
        tokens=tokens,
    )


def parse_usage(text: str, name: str) -> list[HourlyVolume]:
    """Parse CSV (header ``hour,workload,backend,tokens``) or JSON lines."""
    stripped = text.lstrip()
    rows: list[HourlyVolume] = []
    if stripped.startswith("{"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise UserError(f"{name}:{number}: invalid JSON: {exc}") from None
            if not isinstance(record, dict):
                raise UserError(f"{name}:{number}: each line must be a JSON object")
            rows.append(_row(record, f"{name}:{number}"))
        return rows
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if sorted(header) != sorted(FIELDS):
        raise UserError(f"{name}: the CSV header must be {','.join(FIELDS)} (got {header})")
    for number, record in enumerate(reader, start=2):
        rows.append(_row(dict(record), f"{name}:{number}"))
    return rows


def file_source(path: str | Path) -> MemoryUsageSource:
    """A usage source read from a CSV or JSON-lines file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read usage file {file}: {exc.strerror or exc}") from None
    return MemoryUsageSource(parse_usage(text, str(file)))


def ledger_source(url: str) -> UsageSource:
    """The gateway's usage ledger in the store at ``url`` (SQLite or PostgreSQL) as a source.

    Nothing is read until ``hourly_volume`` is asked; each call opens and closes the store.
    """
    from fulcrum.telemetry.ledger.source import LedgerUsageSource

    return LedgerUsageSource(url)


def parse_since(text: str) -> timedelta:
    """``30d``, ``12h`` or ``2w`` → a duration (the look-back window of a command)."""
    units = {"h": 1, "d": 24, "w": 24 * 7}
    value, unit = text[:-1], text[-1:]
    try:
        amount = float(value)
    except ValueError:
        amount = -1
    if unit not in units or amount <= 0:
        raise UserError(f"--since: expected a duration such as 30d, 12h or 2w, not {text!r}")
    return timedelta(hours=amount * units[unit])
