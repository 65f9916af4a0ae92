"""The audit log's state as Prometheus series, read from its status when scraped.

A collector (not gauges set on every record) so the hot path pays nothing for these series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from fulcrum.telemetry.audit import AuditStatus


class AuditCollector(Collector):
    """``fulcrum_audit_*``: spool depth, shipping lag, records written and shipped, failures."""

    def __init__(self, status: Callable[[], AuditStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        status = self._status()
        depth = status.depth
        yield GaugeMetricFamily(
            "fulcrum_audit_spool_segments",
            "Closed audit segments waiting to be shipped.",
            value=depth.closed_segments,
        )
        yield GaugeMetricFamily(
            "fulcrum_audit_spool_bytes",
            "Bytes of audit records on local disk not yet shipped (closed + open segment).",
            value=depth.closed_bytes + depth.open_bytes,
        )
        yield GaugeMetricFamily(
            "fulcrum_audit_shipping_lag_seconds",
            "Age of the oldest audit record not yet shipped (0 when all are shipped).",
            value=status.lag_seconds,
        )
        yield CounterMetricFamily(
            "fulcrum_audit_records",
            "Audit records made durable in the spool.",
            value=status.spool.records,
        )
        yield CounterMetricFamily(
            "fulcrum_audit_shipped_records",
            "Audit records shipped to the sink (S3 or directory).",
            value=status.shipper.uploaded_records,
        )
        yield CounterMetricFamily(
            "fulcrum_audit_upload_failures",
            "Failed segment uploads (retried with backoff; nothing is dropped).",
            value=status.shipper.failures,
        )
