"""The writer against real databases: batches add up, replicas sum, failures lose nothing.

Every check compares the database's answer with the same events aggregated in memory, so a
lost, doubled or mis-merged bucket shows up as a difference.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator

import psycopg
import pytest

from fulcrum.store import open_store
from fulcrum.store.base import Store, utc_now
from fulcrum.telemetry.ledger import LedgerWriter
from fulcrum.telemetry.ledger.aggregate import aggregate
from fulcrum.telemetry.ledger.storage import Batch, write_batch
from fulcrum.telemetry.metrics import GatewayMetrics
from tests.integration.ledger.events import expected, random_events, stored
from tests.support.postgres import terminate_backend


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    yield opened
    await opened.close()


def rename_ledger(url: str, old: str, new: str) -> None:
    """Take the ledger table away (or give it back) behind the store's back."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10) as db:
            db.execute(f"ALTER TABLE {old} RENAME TO {new}")
        return
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"ALTER TABLE {old} RENAME TO {new}")


async def test_a_flush_writes_what_was_recorded(store: Store) -> None:
    events = random_events(500, seed=1)
    writer = LedgerWriter(store)
    for item in events:
        writer.record(item)
    assert await writer.flush() is True
    assert writer.pending_buckets == 0 and writer.stats.flushes == 1
    assert await stored(store) == expected(events)
    assert await stored(store, ["tenant"]) == expected(events, ["tenant"])


async def test_later_flushes_add_to_the_rows_already_there(store: Store) -> None:
    first, second, third = random_events(300, 2), random_events(300, 3), random_events(5, 4)
    writer = LedgerWriter(store)
    for batch in (first, second, third):
        for item in batch:
            writer.record(item)
        assert await writer.flush() is True
    # counters and latency histograms were merged by the upsert, bucket for bucket
    assert await stored(store) == expected(first + second + third)


async def test_two_writers_on_one_database_sum_into_the_same_rows(store_url: str) -> None:
    left_store, right_store = await open_store(store_url), await open_store(store_url)
    try:
        left, right = LedgerWriter(left_store), LedgerWriter(right_store)
        everything = []
        for round_number in range(4):
            mine, theirs = (
                random_events(200, 10 + round_number),
                random_events(200, 20 + round_number),
            )
            everything += mine + theirs
            for item in mine:
                left.record(item)
            for item in theirs:
                right.record(item)
            # both replicas flush the same hour rows at the same moment
            assert list(await asyncio.gather(left.flush(), right.flush())) == [True, True]
        assert await stored(left_store) == expected(everything)
        assert await stored(right_store, ["hour"]) == expected(everything, ["hour"])
    finally:
        await left_store.close()
        await right_store.close()


async def test_a_batch_written_twice_is_counted_once(store: Store) -> None:
    """A flush whose COMMIT went through but whose answer was lost is retried: no double."""
    events = random_events(100, seed=5)
    batch = Batch("retried-batch", aggregate(events))
    assert await write_batch(store, batch, utc_now()) is True
    assert await write_batch(store, batch, utc_now()) is False
    assert await stored(store) == expected(events)


async def test_a_failed_flush_loses_nothing_and_the_next_one_catches_up(
    store_url: str, store: Store
) -> None:
    metrics = GatewayMetrics()
    writer = LedgerWriter(store, metrics=metrics)
    before, during, after = random_events(200, 6), random_events(200, 7), random_events(50, 8)
    for item in before:
        writer.record(item)
    assert await writer.flush() is True

    rename_ledger(store_url, "usage_ledger", "usage_ledger_away")  # the database now refuses
    for item in during:
        writer.record(item)
    assert await writer.flush() is False
    assert writer.stats.write_errors == 1 and "usage_ledger" in (writer.stats.last_error or "")
    kept = writer.pending_buckets
    assert kept == len(aggregate(during))
    assert metrics.registry.get_sample_value("fulcrum_ledger_pending_buckets") == kept

    rename_ledger(store_url, "usage_ledger_away", "usage_ledger")  # the database is back
    for item in after:
        writer.record(item)
    assert await writer.flush() is True
    assert writer.pending_buckets == 0
    assert await stored(store) == expected(before + during + after)
    assert metrics.registry.get_sample_value("fulcrum_ledger_flushes_total") == 3
    assert metrics.registry.get_sample_value("fulcrum_ledger_write_errors_total") == 1


async def test_a_terminated_postgres_connection_between_flushes(postgres_url: str) -> None:
    store = await open_store(postgres_url)
    try:
        writer = LedgerWriter(store)
        first, second = random_events(200, 9), random_events(200, 10)
        for item in first:
            writer.record(item)
        assert await writer.flush() is True
        terminate_backend(await store.backend_pid())  # type: ignore[attr-defined]
        for item in second:
            writer.record(item)
        assert await writer.flush() is True  # on a fresh connection
        assert writer.stats.write_errors == 0
        assert await stored(store) == expected(first + second)
    finally:
        await store.close()


async def test_the_background_task_flushes_and_stop_writes_the_rest(store: Store) -> None:
    writer = LedgerWriter(store, flush_interval=0.05)
    writer.start()
    first = random_events(100, 11)
    for item in first:
        writer.record(item)
    deadline = time.monotonic() + 10
    while await stored(store) != expected(first):
        assert time.monotonic() < deadline, "the background task did not flush"
        await asyncio.sleep(0.02)
    second = random_events(100, 12)
    for item in second:
        writer.record(item)
    await writer.stop()
    assert not writer.running
    assert await stored(store) == expected(first + second)
