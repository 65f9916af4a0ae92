"""S3 unreachable for a while: records keep being acknowledged, wait on disk, ship exactly once.

moto is in-memory, so its restart is an empty S3: what was shipped before the outage is gone
from the bucket. The test therefore ships a first batch (A) before the outage, acknowledges a
second batch (B) only while S3 is down, and after the restart expects exactly B, each record
once — A must not come back (it was deleted after its upload, not uploaded again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from fulcrum.telemetry.audit import AuditLog
from tests.integration.audit.configs import s3_audit_config
from tests.support.moto import MotoS3, id_counts


async def poll(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)


async def test_outage_delays_shipping_and_loses_nothing(moto_s3: MotoS3, tmp_path: Path) -> None:
    moto_s3.create_bucket()
    key_arn = moto_s3.create_kms_key()
    audit = AuditLog.from_config(s3_audit_config(moto_s3.endpoint, tmp_path / "spool", key_arn))
    await audit.start()
    try:
        # A: shipped while S3 is up.
        await asyncio.gather(*(audit.record({"id": f"A{i}", "pad": "a" * 80}) for i in range(50)))
        await poll(lambda: audit.status().depth.empty, 10, "batch A shipped")
        assert id_counts(moto_s3.records()) == {f"A{i}": 1 for i in range(50)}
        uploads_before = audit.status().shipper.uploads

        # B: acknowledged while S3 is down; the gateway would keep serving.
        moto_s3.stop()
        b_ids = [f"B{i}" for i in range(400)]
        for wave in range(0, len(b_ids), 40):
            await asyncio.gather(
                *(audit.record({"id": i, "pad": "b" * 80}) for i in b_ids[wave : wave + 40])
            )
        await poll(lambda: audit.status().shipper.failures >= 3, 10, "failing uploads")
        await poll(lambda: audit.status().depth.open_bytes == 0, 5, "age rotation")
        status = audit.status()
        assert status.shipper.uploads == uploads_before  # nothing went anywhere
        assert status.depth.closed_segments >= 5, status.depth
        assert status.lag_seconds > 0
        assert audit.shipper.running  # failures were absorbed, the task lives on

        # S3 back, empty (moto is in-memory): create the bucket and wait for the backlog.
        moto_s3.start()
        moto_s3.create_bucket()
        await poll(lambda: audit.status().depth.empty, 20, "backlog shipped")
    finally:
        await audit.stop()

    counts = id_counts(moto_s3.records())
    assert counts == {i: 1 for i in b_ids}, {k: v for k, v in counts.items() if v != 1}
    assert audit.status().lag_seconds == 0.0
