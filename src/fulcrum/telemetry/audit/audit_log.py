"""The audit log as the gateway sees it: ``record`` is durable when it returns.

Composes the spool (durability, group commit, recovery), the shipper (spool → sink) and the
redactor (which the pipeline applies to bodies a tenant allows to be audited). The record's
content is the caller's business; this object only guarantees that what it acknowledged is
shipped — later, perhaps after a restart — but never lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fulcrum.config import AuditConfig
from fulcrum.telemetry.audit.redact import Redactor
from fulcrum.telemetry.audit.segment import Segment
from fulcrum.telemetry.audit.shipper import AuditShipper, ShipperStats
from fulcrum.telemetry.audit.sink import AuditSink, build_sink
from fulcrum.telemetry.audit.spool import AuditSpool, SpoolDepth, SpoolStats


@dataclass(frozen=True)
class AuditStatus:
    """A snapshot for metrics: what waits, how late shipping is, what was done."""

    depth: SpoolDepth
    lag_seconds: float
    spool: SpoolStats
    shipper: ShipperStats


class AuditLog:
    """``await record(...)``: on disk (fsync'd) when it returns; shipped in the background."""

    def __init__(
        self,
        spool: AuditSpool,
        shipper: AuditShipper,
        redactor: Redactor | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.spool = spool
        self.shipper = shipper
        self.redactor = redactor or Redactor()
        self._stop_timeout = stop_timeout

    @classmethod
    def from_config(
        cls, config: AuditConfig, *, sink: AuditSink | None = None, host: str | None = None
    ) -> AuditLog:
        """Build the spool, the sink (unless given) and the shipper a configuration describes."""
        spool = AuditSpool(
            config.spool_dir,
            segment_max_bytes=config.segment_max_bytes,
            segment_max_age=config.segment_max_age_seconds,
            host=host,
        )
        shipper = AuditShipper(
            spool,
            sink if sink is not None else build_sink(config.sink),
            interval=config.ship_interval_seconds,
            retry_initial=config.retry_initial_seconds,
            retry_max=config.retry_max_seconds,
        )
        return cls(spool, shipper, Redactor.from_config(config.redact), config.stop_timeout_seconds)

    async def start(self) -> list[Segment]:
        """Open the spool (recovering what a crashed process left) and start shipping.

        Returns the recovered segments, for a start-up log line.
        """
        recovered = await self.spool.open()
        self.shipper.start()
        return recovered

    async def record(self, record: Mapping[str, Any] | bytes) -> None:
        """Append one record; returns once it is durable. Raises if it could not be written."""
        await self.spool.append(record)

    async def stop(self, flush: bool = True) -> None:
        """Refuse new records, finish pending ones, ship what can be shipped before the
        stop timeout; the rest stays in the spool for the next start."""
        await self.spool.seal()
        await self.shipper.stop(flush=flush, timeout=self._stop_timeout)
        await self.spool.close()

    def status(self) -> AuditStatus:
        return AuditStatus(
            depth=self.spool.depth(),
            lag_seconds=self.shipper.lag(),
            spool=self.spool.stats,
            shipper=self.shipper.stats,
        )
