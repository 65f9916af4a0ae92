"""A sink that uploads shipped segments to S3 with server-side encryption under a KMS key."""

from __future__ import annotations

import logging
from typing import Any

from fulcrum.config import S3SinkConfig

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-ndjson"


def object_key(prefix: str, name: str) -> str:
    """``prefix/name`` without doubled or leading slashes (an empty prefix: just ``name``)."""
    prefix = prefix.strip("/")
    return f"{prefix}/{name}" if prefix else name


class S3Sink:
    """``PutObject`` with ``ServerSideEncryption=aws:kms`` and the configured key id.

    Object keys are deterministic (prefix + the segment's partitioned name), so a retried
    upload overwrites the same object with the same bytes. The botocore client is blocking
    and thread-safe; the shipper calls ``put`` from a worker thread.
    """

    def __init__(self, client: Any, *, bucket: str, kms_key_id: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.kms_key_id = kms_key_id
        self.prefix = prefix.strip("/")
        self._warned = False

    @classmethod
    def from_config(cls, config: S3SinkConfig, session: Any = None) -> S3Sink:
        """Build the client from botocore's default credential chain (or a given session)."""
        import botocore.session
        from botocore.config import Config

        session = session or botocore.session.get_session()
        client = session.create_client(
            "s3",
            region_name=config.region,
            endpoint_url=config.endpoint,
            config=Config(
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
                retries={"max_attempts": config.max_attempts, "mode": "standard"},
                s3={"addressing_style": config.addressing_style},
            ),
        )
        return cls(client, bucket=config.bucket, kms_key_id=config.kms_key_id, prefix=config.prefix)

    def key(self, name: str) -> str:
        return object_key(self.prefix, name)

    def put(self, name: str, body: bytes) -> None:
        response = self._client.put_object(
            Bucket=self.bucket,
            Key=self.key(name),
            Body=body,
            ContentType=CONTENT_TYPE,
            ContentEncoding="gzip",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self.kms_key_id,
        )
        if response.get("ServerSideEncryption") != "aws:kms" and not self._warned:
            # An S3-compatible store that ignores the header: stored, but not as configured.
            self._warned = True
            log.error(
                "audit sink: s3://%s did not confirm SSE-KMS (got %r)",
                self.bucket,
                response.get("ServerSideEncryption"),
            )
