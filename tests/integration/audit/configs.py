"""The audit configuration the integration tests and the writer subprocess share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fulcrum.telemetry.audit import AuditConfig
from tests.support.moto import BUCKET, REGION

PREFIX = "audit-test"


def s3_audit_config(
    endpoint: str, spool_dir: Path, kms_key_id: str, **overrides: Any
) -> AuditConfig:
    """Small segments and fast retries, so that tests see rotation and backoff in seconds."""
    settings: dict[str, Any] = {
        "enabled": True,
        "spool_dir": str(spool_dir),
        "segment_max_bytes": 4096,
        "segment_max_age_seconds": 0.5,
        "ship_interval_seconds": 0.05,
        "retry_initial_seconds": 0.05,
        "retry_max_seconds": 0.25,
        "stop_timeout_seconds": 15.0,
        "sink": {
            "type": "s3",
            "bucket": BUCKET,
            "prefix": PREFIX,
            "region": REGION,
            "kms_key_id": kms_key_id,
            "endpoint_url": endpoint,
            "max_attempts": 1,
            "connect_timeout": 1.0,
            "read_timeout": 10.0,
        },
    }
    settings.update(overrides)
    return AuditConfig.model_validate(settings)
