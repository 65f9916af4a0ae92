"""The writer's hot path and memory bound, against a store that cannot be written.

(Flushes into real SQLite and PostgreSQL databases are in tests/integration/ledger.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fulcrum.store import create_store
from fulcrum.telemetry.ledger import LedgerWriter, UsageEvent
from fulcrum.telemetry.metrics import GatewayMetrics

T0 = 1_772_355_600.0  # 2026-03-01T09:00:00Z


def event(tenant: str = "acme", **changes: object) -> UsageEvent:
    fields: dict[str, object] = {
        "time": T0,
        "tenant": tenant,
        "model": "chat",
        "deployment": "vllm-a",
        "backend": "self_hosted",
        "workload": "interactive",
        "input_tokens": 10,
    }
    fields.update(changes)
    return UsageEvent(**fields)  # type: ignore[arg-type]


@pytest.fixture
def unwritable(tmp_path: Path) -> str:
    """A SQLite URL whose directory does not exist: every store call fails."""
    return f"sqlite:///{tmp_path / 'missing' / 'ledger.db'}"


def sample(metrics: GatewayMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


async def test_beyond_max_pending_new_buckets_are_dropped_and_counted(
    unwritable: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = GatewayMetrics()
    writer = LedgerWriter(create_store(unwritable), max_pending=2, metrics=metrics)
    caplog.set_level(logging.WARNING)
    writer.record(event("a"))
    writer.record(event("b"))
    writer.record(event("c"))  # a third bucket: over the bound
    writer.record(event("d"))
    writer.record(event("a"))  # an existing bucket still counts: it costs no memory
    assert writer.pending_buckets == 2
    assert writer.stats.dropped_events == 2
    assert sample(metrics, "fulcrum_ledger_dropped_events_total") == 2
    assert sample(metrics, "fulcrum_ledger_pending_buckets") == 2
    assert sum("dropping events" in r.message for r in caplog.records) == 1  # logged once


async def test_a_failed_flush_keeps_the_batch_and_it_still_counts_against_the_bound(
    unwritable: str,
) -> None:
    metrics = GatewayMetrics()
    writer = LedgerWriter(create_store(unwritable), max_pending=3, metrics=metrics)
    writer.record(event("a"))
    writer.record(event("b"))
    assert await writer.flush() is False  # never raises
    assert writer.stats.write_errors == 1 and writer.stats.last_error
    assert sample(metrics, "fulcrum_ledger_write_errors_total") == 1
    assert writer.pending_buckets == 2  # kept for the retry
    # New events collect beside the kept batch (never into it: its id must keep meaning
    # exactly these buckets), so even "a" takes a new bucket.
    writer.record(event("a"))
    writer.record(event("c"))
    writer.record(event("a"))
    assert writer.pending_buckets == 3
    assert writer.stats.dropped_events == 1
    assert await writer.flush() is False
    assert writer.stats.write_errors == 2 and writer.pending_buckets == 3


async def test_record_never_raises_on_a_malformed_event(unwritable: str) -> None:
    writer = LedgerWriter(create_store(unwritable))
    writer.record(event(time="yesterday"))
    writer.record(event(input_tokens=None))
    assert writer.stats.dropped_events == 2


async def test_stop_without_a_store_logs_what_is_lost(
    unwritable: str, caplog: pytest.LogCaptureFixture
) -> None:
    writer = LedgerWriter(create_store(unwritable), flush_interval=60)
    writer.start()
    assert writer.running
    writer.record(event())
    await writer.stop(timeout=5)
    assert not writer.running
    assert any("1 buckets could not be written" in r.message for r in caplog.records)


def test_arguments_are_checked(unwritable: str) -> None:
    with pytest.raises(ValueError):
        LedgerWriter(create_store(unwritable), flush_interval=0)
    with pytest.raises(ValueError):
        LedgerWriter(create_store(unwritable), max_pending=0)
