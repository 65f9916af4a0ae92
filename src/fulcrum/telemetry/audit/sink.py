"""The sink interface: where closed, gzip'd segments go, and how a sink is built from config."""

from __future__ import annotations

from typing import Protocol

from fulcrum.config import AuditSinkConfig, DirectorySinkConfig


class AuditSink(Protocol):
    """Stores one shipped segment. Blocking: the shipper calls it in a worker thread.

    ``put`` must be idempotent — the same name and bytes again (an upload retried after a
    crash that came between upload and deletion) leaves one object, not two — and must raise
    on any failure, so the segment stays on disk and is retried.
    """

    def put(self, name: str, body: bytes) -> None: ...


def build_sink(config: AuditSinkConfig) -> AuditSink:
    """The sink a configuration describes (botocore is imported only for S3)."""
    if isinstance(config, DirectorySinkConfig):
        from fulcrum.telemetry.audit.directory import DirectorySink

        return DirectorySink(config.path)
    from fulcrum.telemetry.audit.s3 import S3Sink

    return S3Sink.from_config(config)
