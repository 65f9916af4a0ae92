"""The proposed ``audit:`` section of the gateway configuration (to move into config.py).

Kept beside the audit package until the composition root adopts it, so the audit components
and their settings can be reviewed together.

Example::

    audit:
      enabled: true
      spool_dir: /var/lib/fulcrum/audit-spool
      segment_max_bytes: 8388608
      segment_max_age_seconds: 60
      sink: {type: s3, bucket: acme-audit, prefix: fulcrum, region: sa-east-1,
             kms_key_id: "arn:aws:kms:sa-east-1:123456789012:key/…"}
      redact: {email: true, phone: true, card: true, cpf: true, cnpj: true}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, HttpUrl, field_validator, model_validator

from fulcrum.config import _Strict

_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
_REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"


class RedactConfig(_Strict):
    """Which kinds of personal data are masked in audited prompt and response bodies."""

    email: bool = True
    phone: bool = True
    card: bool = True  # payment card numbers (Luhn-checked)
    cpf: bool = True  # Brazilian individual taxpayer number (check digits verified)
    cnpj: bool = True  # Brazilian company number (check digits verified)


class S3SinkConfig(_Strict):
    """Ship closed segments to S3 with SSE-KMS under the configured key."""

    type: Literal["s3"]
    bucket: str = Field(pattern=_BUCKET)
    prefix: str = "audit"
    region: str = Field(pattern=_REGION)
    kms_key_id: str = Field(min_length=1)  # key id, alias or ARN
    endpoint_url: HttpUrl | None = None  # S3-compatible endpoint or VPC endpoint
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)  # botocore's own retries per upload

    @field_validator("prefix")
    @classmethod
    def _clean_prefix(cls, prefix: str) -> str:
        cleaned = prefix.strip("/")
        if ".." in cleaned.split("/"):
            raise ValueError("prefix must not contain '..'")
        return cleaned

    @property
    def endpoint(self) -> str | None:
        return None if self.endpoint_url is None else str(self.endpoint_url).rstrip("/")


class DirectorySinkConfig(_Strict):
    """Ship closed segments into a local (or mounted) directory."""

    type: Literal["directory"]
    path: Path


AuditSinkConfig = Annotated[S3SinkConfig | DirectorySinkConfig, Field(discriminator="type")]


class AuditConfig(_Strict):
    """The durable audit log: local spool, shipping to a sink, redaction of bodies.

    Relative paths are meant to be resolved against the configuration file's directory
    (``resolve_paths``), like the SQLite store.
    """

    enabled: bool = False
    spool_dir: Path = Path("audit-spool")
    segment_max_bytes: int = Field(default=8 * 1024 * 1024, ge=4096)
    segment_max_age_seconds: float = Field(default=60.0, gt=0)
    sink: AuditSinkConfig = DirectorySinkConfig(type="directory", path=Path("audit-log"))
    redact: RedactConfig = RedactConfig()
    ship_interval_seconds: float = Field(default=1.0, gt=0)  # idle poll for due segments
    retry_initial_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=60.0, gt=0)
    stop_timeout_seconds: float = Field(default=10.0, ge=0)  # shipping on graceful stop

    @model_validator(mode="after")
    def _backoff_ordered(self) -> AuditConfig:
        if self.retry_initial_seconds > self.retry_max_seconds:
            raise ValueError("retry_initial_seconds must not exceed retry_max_seconds")
        return self

    def resolve_paths(self, base: Path) -> AuditConfig:
        """Relative spool and directory-sink paths mean: next to the configuration file."""
        sink = self.sink
        if isinstance(sink, DirectorySinkConfig) and not sink.path.is_absolute():
            sink = sink.model_copy(update={"path": (base / sink.path).resolve()})
        spool = self.spool_dir if self.spool_dir.is_absolute() else (base / self.spool_dir)
        return self.model_copy(update={"spool_dir": spool.resolve(), "sink": sink})
