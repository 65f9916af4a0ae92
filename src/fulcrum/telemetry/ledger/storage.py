"""The ledger's reads and writes against the gateway's store, whichever database it is.

The store exposes ``run(work)`` (its connection, alone, with its error handling); the SQL for
each dialect lives beside this module (``sqlite_storage``, ``postgres_storage``) so the store
itself knows nothing about the ledger. PostgreSQL's driver is imported only when used.

A flush is one transaction: it records its batch id, then upserts every bucket, adding to the
row that is there (counts, money and histogram buckets are all sums). If the same batch id is
already recorded, the batch was committed by an earlier attempt whose outcome was lost (the
connection died during COMMIT) and nothing is written again. Batch ids are kept for
``BATCH_RETENTION``; a writer never holds a batch that long.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from fulcrum.econ.usage import HourlyVolume
from fulcrum.store.base import Store
from fulcrum.telemetry.ledger import latency
from fulcrum.telemetry.ledger.aggregate import BucketKey, Totals

if TYPE_CHECKING:
    from fulcrum.store.postgres import PostgresStore

BATCH_RETENTION = timedelta(days=30)
COUNTERS = tuple(item.name for item in fields(Totals) if item.name != "latency")
"""The additive columns, in the order of ``Totals``' fields (requests … saved_nanousd)."""
KEY_COLUMNS = ("hour", "tenant", "model", "deployment", "backend", "workload")
VOLUME_BACKENDS = ("bedrock", "self_hosted")


@dataclass(frozen=True)
class Batch:
    """Buckets taken from a writer for one flush, under an id that makes the write idempotent."""

    batch_id: str
    buckets: Mapping[BucketKey, Totals]


async def write_batch(store: Store, batch: Batch, now: datetime) -> bool:
    """Add ``batch`` to the ledger in one transaction; False if it had already been written."""
    from fulcrum.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from fulcrum.telemetry.ledger import sqlite_storage

        return await sqlite_storage.write_batch(store, batch, now)
    from fulcrum.telemetry.ledger import postgres_storage

    return await postgres_storage.write_batch(_postgres(store), batch, now)


async def read_buckets(
    store: Store, since: datetime, until: datetime
) -> list[tuple[BucketKey, Totals]]:
    """Every row with ``since <= hour < until``."""
    from fulcrum.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from fulcrum.telemetry.ledger import sqlite_storage

        return await sqlite_storage.read_buckets(store, since, until)
    from fulcrum.telemetry.ledger import postgres_storage

    return await postgres_storage.read_buckets(_postgres(store), since, until)


async def read_volume(store: Store, since: datetime, until: datetime) -> list[HourlyVolume]:
    """Input + output tokens per hour x workload x backend (bedrock, self_hosted), by hour."""
    from fulcrum.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from fulcrum.telemetry.ledger import sqlite_storage

        return await sqlite_storage.read_volume(store, since, until)
    from fulcrum.telemetry.ledger import postgres_storage

    return await postgres_storage.read_volume(_postgres(store), since, until)


def _postgres(store: Store) -> PostgresStore:
    from fulcrum.store.postgres import PostgresStore

    if not isinstance(store, PostgresStore):
        raise TypeError(f"the usage ledger needs a SQLite or PostgreSQL store, not {store!r}")
    return store


def totals_of(counters: Sequence[object], histogram: latency.Counts) -> Totals:
    """A row's additive columns (in ``COUNTERS`` order) and histogram as ``Totals``."""
    totals = Totals(latency=histogram)
    for name, value in zip(COUNTERS, counters, strict=True):
        setattr(totals, name, int(str(value)))
    return totals
