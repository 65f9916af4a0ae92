"""Reading the ledger back: windows, groupings, and the decision engine's hourly volumes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fulcrum.econ.usage import HourlyVolume
from fulcrum.store import open_store
from fulcrum.store.base import Store
from fulcrum.telemetry.ledger import LedgerWriter, UsageEvent, hourly_volume, usage_rows
from fulcrum.telemetry.ledger.record import floor_hour
from tests.integration.ledger.events import T0, expected, random_events

HOUR = timedelta(hours=1)


def at(event: UsageEvent) -> datetime:
    """The test events carry datetimes."""
    assert isinstance(event.time, datetime)
    return event.time


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    yield opened
    await opened.close()


async def fill(store: Store, seed: int = 1, hours: int = 5) -> list[UsageEvent]:
    events = random_events(800, seed=seed, hours=hours)
    writer = LedgerWriter(store)
    for item in events:
        writer.record(item)
    assert await writer.flush() is True
    return events


async def test_an_hour_counts_when_it_overlaps_the_window(store: Store) -> None:
    events = await fill(store)
    # from the middle of hour 1 to the start of hour 3: hours 1 and 2
    rows = await usage_rows(store, T0 + 1.5 * HOUR, T0 + 3 * HOUR, ["hour"])
    inside = [e for e in events if T0 + HOUR <= at(e) < T0 + 3 * HOUR]
    assert rows == expected(inside, ["hour"])
    assert [dict(row.group)["hour"] for row in rows] == [
        "2026-03-01T10:00:00Z",
        "2026-03-01T11:00:00Z",
    ]
    assert await usage_rows(store, T0 + 10 * HOUR, T0 + 11 * HOUR, ["tenant"]) == []


@pytest.mark.parametrize(
    "by", [["tenant"], ["model"], ["deployment"], ["hour"], ["workload", "backend"], []]
)
async def test_every_grouping_matches_the_events(store: Store, by: list[str]) -> None:
    events = await fill(store, seed=2)
    assert await usage_rows(store, T0, T0 + 5 * HOUR, by) == expected(events, by)


async def test_hourly_volume_is_billed_tokens_per_hour_workload_and_backend(store: Store) -> None:
    events = await fill(store, seed=3)
    truth: dict[tuple[datetime, str, str], int] = defaultdict(int)
    for e in events:
        if e.backend != "none":  # cache hits and refusals used no backend
            hour = floor_hour(at(e))
            truth[(hour, e.workload, e.backend)] += e.input_tokens + e.output_tokens
    since, until = T0 + HOUR, T0 + 4 * HOUR
    volumes = await hourly_volume(store, since, until)
    assert volumes == [
        HourlyVolume(hour, workload, backend, tokens)
        for (hour, workload, backend), tokens in sorted(truth.items())
        if since <= hour < until
    ]
    assert {v.backend for v in volumes} == {"bedrock", "self_hosted"}
    assert all(v.hour.tzinfo is not None for v in volumes)
    # the engine's window is exact: an hour starting before `since` is not included
    assert (await hourly_volume(store, since + timedelta(minutes=1), until))[
        0
    ].hour == T0 + 2 * HOUR


async def test_sqlite_and_postgres_answer_alike(tmp_path: Path, postgres_url: str) -> None:
    answers = []
    for url in (f"sqlite:///{tmp_path / 'same.db'}", postgres_url):
        store = await open_store(url)
        try:
            await fill(store, seed=4)
            answers.append(
                (
                    await usage_rows(store, T0, T0 + 5 * HOUR, ["tenant", "hour"]),
                    await hourly_volume(store, T0, T0 + 5 * HOUR),
                )
            )
        finally:
            await store.close()
    assert answers[0] == answers[1]
