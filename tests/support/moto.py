"""A real S3-compatible endpoint for the audit tests: ``moto_server`` as a child process.

Started on a free port of 127.0.0.1, polled for readiness with a deadline, stopped by PID.
moto keeps everything in memory: a restart on the same port is an empty S3 (create the
bucket again). Credentials are dummies set in the environment (inherited by subprocesses).
"""

from __future__ import annotations

import gzip
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.servers import ServerProcess, free_port, start_server
from tests.support.services import service_missing

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
REGION = "us-east-1"
BUCKET = "fulcrum-audit-test"


@dataclass
class MotoS3:
    """One moto server on a fixed port that can be stopped and started again."""

    port: int
    log_dir: Path
    server: ServerProcess | None = None
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)]
        self.server = start_server(argv, self.port, self.log_dir, "/", timeout=30)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self, service: str = "s3") -> Any:
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(
                service, endpoint_url=self.endpoint, region_name=REGION
            )
        return self._clients[service]

    def create_bucket(self, name: str = BUCKET) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def create_kms_key(self) -> str:
        """A KMS key in moto's KMS (same endpoint); its ARN is what the sink is given."""
        return str(self.client("kms").create_key(Description="audit")["KeyMetadata"]["Arn"])

    def keys(self, bucket: str = BUCKET) -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=bucket)
            for item in page.get("Contents", [])
        ]

    def records(self, bucket: str = BUCKET) -> list[dict[str, Any]]:
        """Every record in every object of the bucket (objects are gzip'd JSON lines)."""
        records: list[dict[str, Any]] = []
        for key in self.keys(bucket):
            body = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
            records.extend(orjson.loads(line) for line in gzip.decompress(body).splitlines())
        return records


def id_counts(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(record["id"]) for record in records)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials; no profile or config file of the machine is read."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture
def moto_s3(tmp_path: Path, aws_env: None) -> Iterator[MotoS3]:
    if not MOTO_SERVER.exists():
        service_missing(f"{MOTO_SERVER} not found (install the dev extra: moto[server])")
    moto = MotoS3(free_port(), tmp_path / "moto-logs")
    moto.start()
    try:
        yield moto
    finally:
        moto.stop()
