"""Shipping to a real S3 endpoint (moto server): SSE-KMS on every object, keys, idempotency."""

from __future__ import annotations

import asyncio
import gzip
import re
from pathlib import Path

from fulcrum.telemetry.audit import AuditLog
from fulcrum.telemetry.audit.s3 import S3Sink
from tests.integration.audit.configs import BUCKET, PREFIX, s3_audit_config
from tests.support.moto import MotoS3, id_counts

KEY = re.compile(
    rf"^{PREFIX}/year=\d{{4}}/month=\d\d/day=\d\d/hour=\d\d/"
    r"[A-Za-z0-9._-]+-[0-9a-f]{12}-\d{8}-\d{8}T\d{9}Z\.jsonl\.gz$"
)


async def test_every_object_is_sse_kms_encrypted_gzip_json_lines(
    moto_s3: MotoS3, tmp_path: Path
) -> None:
    moto_s3.create_bucket()
    key_arn = moto_s3.create_kms_key()
    audit = AuditLog.from_config(s3_audit_config(moto_s3.endpoint, tmp_path / "spool", key_arn))
    await audit.start()
    for wave in range(10):  # waves of concurrent requests: several batches, several segments
        ids = range(wave * 20, wave * 20 + 20)
        await asyncio.gather(*(audit.record({"id": i, "pad": "q" * 100}) for i in ids))
    await audit.stop()

    keys = moto_s3.keys()
    assert len(keys) >= 3, keys  # 200 records of ~120 bytes in 4 KiB segments
    s3 = moto_s3.client()
    for key in keys:
        assert KEY.match(key), key
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", (key, head)
        assert head["SSEKMSKeyId"] == key_arn, (key, head)
        assert head["ContentEncoding"] == "gzip"
        assert head["ContentType"] == "application/x-ndjson"
    assert id_counts(moto_s3.records()) == {str(i): 1 for i in range(200)}
    assert audit.status().depth.empty
    assert audit.status().shipper.failures == 0


async def test_a_repeated_upload_is_the_same_single_object(moto_s3: MotoS3) -> None:
    moto_s3.create_bucket()
    key_arn = moto_s3.create_kms_key()
    config = s3_audit_config(moto_s3.endpoint, Path("unused"), key_arn).sink
    sink = S3Sink.from_config(config)  # type: ignore[arg-type]
    body = gzip.compress(b'{"id":"once"}\n', mtime=0)
    name = "year=2025/month=05/day=01/hour=13/h-0123456789ab-00000001-20250501T130000000Z.jsonl.gz"
    await asyncio.to_thread(sink.put, name, body)
    await asyncio.to_thread(sink.put, name, body)  # crash between upload and delete, retried
    assert moto_s3.keys() == [f"{PREFIX}/{name}"]
    assert id_counts(moto_s3.records()) == {"once": 1}
