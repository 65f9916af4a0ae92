"""The ledger's SQL on PostgreSQL: hours as ``timestamptz``, histograms as ``jsonb``.

Every replica writes the same rows; ``INSERT … ON CONFLICT DO UPDATE`` takes the row's lock,
so concurrent flushes of the same hour serialise on that row and each adds to what the other
committed. The histogram merge is done in SQL inside the upsert (sum per bucket key), never by
a read-modify-write in Python. The statement runs inside one transaction per flush, so a flush
is all or nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from fulcrum.econ.usage import HourlyVolume
from fulcrum.store.postgres import Connection, PostgresStore
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
    f"INSERT INTO usage_ledger AS ledger ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join('%s' for _ in _COLUMNS)})"
    f" ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET "
    + ", ".join(f"{name} = ledger.{name} + EXCLUDED.{name}" for name in COUNTERS)
    + ", latency = (SELECT COALESCE(jsonb_object_agg(key, total), '{}'::jsonb) FROM ("
    " SELECT key, sum(value::bigint) AS total FROM ("
    " SELECT key, value FROM jsonb_each_text(ledger.latency)"
    " UNION ALL SELECT key, value FROM jsonb_each_text(EXCLUDED.latency)) AS both_sides"
    " GROUP BY key) AS sums)"
)
_SELECT = (
    f"SELECT {', '.join(_COLUMNS)} FROM usage_ledger WHERE hour >= %s AND hour < %s"
    f" ORDER BY {', '.join(KEY_COLUMNS)}"
)
_VOLUME = (
    "SELECT hour, workload, backend, sum(input_tokens + output_tokens) FROM usage_ledger"
    " WHERE hour >= %s AND hour < %s AND backend = ANY(%s)"
    " GROUP BY hour, workload, backend ORDER BY hour, workload, backend"
)


def _row(key: BucketKey, totals: Totals) -> tuple[object, ...]:
    return (
        hour_start(key.hour),
        *key[1:],
        *(getattr(totals, name) for name in COUNTERS),
        Jsonb(latency.encode(totals.latency)),
    )


async def write_batch(store: PostgresStore, batch: Batch, now: datetime) -> bool:
    """See ``storage.write_batch``. Safe to repeat: the batch id makes a second run a no-op."""
    # In key order: replicas flushing overlapping rows lock them in the same order (no deadlock).
    rows = [_row(key, batch.buckets[key]) for key in sorted(batch.buckets)]

    async def write(connection: Connection) -> bool:
        async with connection.transaction():
            cursor = await connection.execute(
                "INSERT INTO usage_ledger_batches (batch_id, written_at) VALUES (%s, %s)"
                " ON CONFLICT (batch_id) DO NOTHING",
                (batch.batch_id, now),
            )
            if cursor.rowcount == 0:
                return False
            await connection.execute(
                "DELETE FROM usage_ledger_batches WHERE written_at < %s", (now - BATCH_RETENTION,)
            )
            async with connection.cursor() as upserts:
                await upserts.executemany(_UPSERT, rows)
            return True

    return await store.run(write)


async def read_buckets(
    store: PostgresStore, since: datetime, until: datetime
) -> list[tuple[BucketKey, Totals]]:
    """See ``storage.read_buckets``."""

    async def select(connection: Connection) -> list[tuple[BucketKey, Totals]]:
        cursor = await connection.execute(_SELECT, (_aware(since), _aware(until)))
        return [_bucket(row) for row in await cursor.fetchall()]

    return await store.run(select)


def _bucket(row: TupleRow) -> tuple[BucketKey, Totals]:
    hour, tenant, model, deployment, backend, workload = row[:6]
    key = BucketKey(hour_of(hour), tenant, model, deployment, backend, workload)
    return key, totals_of(row[6:-1], latency.decode(row[-1]))


async def read_volume(store: PostgresStore, since: datetime, until: datetime) -> list[HourlyVolume]:
    """See ``storage.read_volume``."""

    async def select(connection: Connection) -> list[HourlyVolume]:
        cursor = await connection.execute(
            _VOLUME, (_aware(since), _aware(until), list(VOLUME_BACKENDS))
        )
        return [
            HourlyVolume(hour.astimezone(UTC), workload, backend, int(tokens))
            for hour, workload, backend, tokens in await cursor.fetchall()
        ]

    return await store.run(select)


def _aware(value: datetime) -> datetime:
    """Naive datetimes are UTC (PostgreSQL would read them in the session's time zone)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
