"""Loss-free audit log: a durable local spool shipped to S3 (SSE-KMS) or a directory.

The gateway needs only ``AuditLog``: ``await start()``, ``await record(dict)`` (durable when it
returns), ``status()`` for metrics, ``await stop()``; and ``Redactor`` for bodies.
"""

from fulcrum.config import (
    AuditConfig,
    DirectorySinkConfig,
    RedactConfig,
    S3SinkConfig,
)
from fulcrum.telemetry.audit.audit_log import AuditLog, AuditStatus
from fulcrum.telemetry.audit.redact import Redactor
from fulcrum.telemetry.audit.shipper import AuditShipper
from fulcrum.telemetry.audit.sink import AuditSink, build_sink
from fulcrum.telemetry.audit.spool import AuditSpool, SpoolClosedError, SpoolLockedError

__all__ = [
    "AuditConfig",
    "AuditLog",
    "AuditShipper",
    "AuditSink",
    "AuditSpool",
    "AuditStatus",
    "DirectorySinkConfig",
    "RedactConfig",
    "Redactor",
    "S3SinkConfig",
    "SpoolClosedError",
    "SpoolLockedError",
    "build_sink",
]
