"""The ledger's SQL on SQLite: hours as fixed-width ISO text, histograms as JSON text.

A flush runs inside ``BEGIN IMMEDIATE``, which takes the database's write lock before the
first read, so a second writer (another process on the same file) waits and then adds to
what the first committed. The histogram merge is done by SQLite's JSON functions inside the
upsert, the same way PostgreSQL does it.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from fulcrum.econ.usage import HourlyVolume
from fulcrum.store.sqlite import SqliteStore, decode_time, encode_time
from fulcrum.telemetry.ledger import latency
from fulcrum.telemetry.ledger.aggregate import BucketKey, Totals
from fulcrum.telemetry.ledger.record import hour_of, hour_start
from fulcrum.telemetry.ledger.storage import (
    BATCH_RETENTION,
    COUNTERS,
    KEY_COLUMNS,
    VOLUME_BACKENDS,
    Batch,
    totals_of,
)

_COLUMNS = (*KEY_COLUMNS, *COUNTERS, "latency")
_UPSERT = (
    f"INSERT INTO usage_ledger ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in _COLUMNS)})"
    f" ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET "
    + ", ".join(f"{name} = usage_ledger.{name} + excluded.{name}" for name in COUNTERS)
    + ", latency = (SELECT json_group_object(key, total) FROM ("
    " SELECT key, sum(value) AS total FROM ("
    " SELECT key, value FROM json_each(usage_ledger.latency)"
    " UNION ALL SELECT key, value FROM json_each(excluded.latency))"
    " GROUP BY key))"
)
_SELECT = (
    f"SELECT {', '.join(_COLUMNS)} FROM usage_ledger WHERE hour >= ? AND hour < ?"
    f" ORDER BY {', '.join(KEY_COLUMNS)}"
)
_VOLUME = (
    "SELECT hour, workload, backend, sum(input_tokens + output_tokens) FROM usage_ledger"
    f" WHERE hour >= ? AND hour < ? AND backend IN ({', '.join('?' for _ in VOLUME_BACKENDS)})"
    " GROUP BY hour, workload, backend ORDER BY hour, workload, backend"
)


def _row(key: BucketKey, totals: Totals) -> tuple[object, ...]:
    return (
        encode_time(hour_start(key.hour)),
        *key[1:],
        *(getattr(totals, name) for name in COUNTERS),
        json.dumps(latency.encode(totals.latency), separators=(",", ":")),
    )


async def write_batch(store: SqliteStore, batch: Batch, now: datetime) -> bool:
    """See ``storage.write_batch``."""
    # In key order: replicas flushing overlapping rows lock them in the same order (no deadlock).
    rows = [_row(key, batch.buckets[key]) for key in sorted(batch.buckets)]

    def write(db: sqlite3.Connection) -> bool:
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(
                "INSERT INTO usage_ledger_batches (batch_id, written_at) VALUES (?, ?)"
                " ON CONFLICT (batch_id) DO NOTHING",
                (batch.batch_id, encode_time(now)),
            )
            if cursor.rowcount == 0:
                db.execute("ROLLBACK")
                return False
            db.execute(
                "DELETE FROM usage_ledger_batches WHERE written_at < ?",
                (encode_time(now - BATCH_RETENTION),),
            )
            db.executemany(_UPSERT, rows)
            db.execute("COMMIT")
            return True
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    return await store.run(write)


async def read_buckets(
    store: SqliteStore, since: datetime, until: datetime
) -> list[tuple[BucketKey, Totals]]:
    """See ``storage.read_buckets``."""

    def select(db: sqlite3.Connection) -> list[tuple[BucketKey, Totals]]:
        cursor = db.execute(_SELECT, (encode_time(since), encode_time(until)))
        return [_bucket(row) for row in cursor]

    return await store.run(select)


def _bucket(row: tuple[object, ...]) -> tuple[BucketKey, Totals]:
    hour, tenant, model, deployment, backend, workload = (str(value) for value in row[:6])
    key = BucketKey(hour_of(decode_time(hour)), tenant, model, deployment, backend, workload)
    histogram = latency.decode(json.loads(str(row[-1])))
    return key, totals_of(row[6:-1], histogram)


async def read_volume(store: SqliteStore, since: datetime, until: datetime) -> list[HourlyVolume]:
    """See ``storage.read_volume``."""

    def select(db: sqlite3.Connection) -> list[HourlyVolume]:
        cursor = db.execute(_VOLUME, (encode_time(since), encode_time(until), *VOLUME_BACKENDS))
        return [
            HourlyVolume(decode_time(hour), workload, backend, int(tokens))
            for hour, workload, backend, tokens in cursor
        ]

    return await store.run(select)
