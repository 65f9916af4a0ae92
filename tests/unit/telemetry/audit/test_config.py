"""The proposed ``audit:`` configuration section: shapes, defaults, errors, path resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fulcrum.config import AuditConfig, DirectorySinkConfig, S3SinkConfig

S3 = {
    "type": "s3",
    "bucket": "acme-audit",
    "prefix": "/fulcrum/gw/",
    "region": "sa-east-1",
    "kms_key_id": "alias/audit",
}


def test_defaults_are_off_and_local() -> None:
    config = AuditConfig()
    assert not config.enabled
    assert isinstance(config.sink, DirectorySinkConfig)
    assert config.redact.email and config.redact.cpf and config.redact.cnpj


def test_s3_sink() -> None:
    config = AuditConfig.model_validate({"enabled": True, "sink": S3, "redact": {"phone": False}})
    assert isinstance(config.sink, S3SinkConfig)
    assert config.sink.prefix == "fulcrum/gw"
    assert config.sink.endpoint is None
    assert not config.redact.phone and config.redact.card


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sink": {**S3, "kms_key_id": ""}}, "kms_key_id"),
        ({"sink": {k: v for k, v in S3.items() if k != "kms_key_id"}}, "kms_key_id"),
        ({"sink": {**S3, "bucket": "Not_A_Bucket"}}, "bucket"),
        ({"sink": {**S3, "region": "brazil"}}, "region"),
        ({"sink": {**S3, "prefix": "a/../b"}}, "prefix"),
        ({"sink": {"type": "ftp"}}, "type"),
        ({"sink": {"type": "directory"}}, "path"),
        ({"segment_max_bytes": 10}, "segment_max_bytes"),
        ({"retry_initial_seconds": 5, "retry_max_seconds": 1}, "retry_initial_seconds"),
        ({"redact": {"iban": True}}, "iban"),
    ],
)
def test_invalid(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AuditConfig.model_validate(change)


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    config = AuditConfig.model_validate(
        {"spool_dir": "spool", "sink": {"type": "directory", "path": "out"}}
    ).resolve_paths(tmp_path)
    assert config.spool_dir == tmp_path / "spool"
    assert isinstance(config.sink, DirectorySinkConfig)
    assert config.sink.path == tmp_path / "out"
    absolute = AuditConfig(spool_dir=Path("/var/spool/fulcrum")).resolve_paths(tmp_path)
    assert absolute.spool_dir == Path("/var/spool/fulcrum")
