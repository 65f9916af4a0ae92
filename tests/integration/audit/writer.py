"""Audit writer for the SIGKILL test: appends records as fast as it can, ships them to S3.

Run as ``python -m tests.integration.audit.writer SPOOL ENDPOINT KMS_KEY`` from the repository
root. Each record's id is printed on stdout (one line, flushed) only after ``record`` returned,
i.e. once it is acknowledged; the test kills this process with SIGKILL and checks that every
printed id reached the bucket exactly once. Runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from fulcrum.telemetry.audit import AuditLog
from tests.integration.audit.configs import s3_audit_config


async def main(spool: Path, endpoint: str, kms_key_id: str, concurrency: int) -> None:
    audit = AuditLog.from_config(
        s3_audit_config(endpoint, spool, kms_key_id, segment_max_bytes=16384)
    )
    await audit.start()
    out = sys.stdout

    async def worker(w: int) -> None:
        i = 0
        while True:
            record_id = f"w{w}-{i}"
            await audit.record({"id": record_id, "worker": w, "seq": i, "pad": "k" * 120})
            out.write(record_id + "\n")
            out.flush()
            i += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spool", type=Path)
    parser.add_argument("endpoint")
    parser.add_argument("kms_key_id")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.spool, args.endpoint, args.kms_key_id, args.concurrency))
