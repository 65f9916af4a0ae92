"""Reproducible usage events for the ledger tests, and what the ledger should hold for them."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from fulcrum.store.base import Store
from fulcrum.telemetry.ledger.aggregate import aggregate
from fulcrum.telemetry.ledger.query import UsageRow, summarize, usage_rows
from fulcrum.telemetry.ledger.record import Backend, UsageEvent

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
WINDOW = (T0 - timedelta(days=1), T0 + timedelta(days=2))
ALL_KEYS = ["hour", "tenant", "model", "deployment", "backend", "workload"]


def random_events(count: int, seed: int, hours: int = 3) -> list[UsageEvent]:
    """Events over ``hours`` hours from T0, over a handful of tenants, models, deployments."""
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        deployments: list[tuple[str, Backend]] = [
            ("vllm-a", "self_hosted"),
            ("bedrock-b", "bedrock"),
        ]
        deployment, backend = rng.choice(deployments)
        cache_hit = rng.random() < 0.1
        events.append(
            UsageEvent(
                time=T0 + timedelta(seconds=rng.uniform(0, hours * 3600 - 1)),
                tenant=rng.choice(["acme", "globex", "initech"]),
                model=rng.choice(["chat", "embed"]),
                deployment="-" if cache_hit else deployment,
                backend="none" if cache_hit else backend,
                workload=rng.choice(["interactive", "batch"]),
                input_tokens=0 if cache_hit else rng.randrange(1, 5000),
                output_tokens=0 if cache_hit else rng.randrange(0, 800),
                cached_tokens=0 if cache_hit else rng.randrange(0, 50),
                cost_usd=0.0 if cache_hit else rng.uniform(0, 0.05),
                error=rng.random() < 0.05,
                cache_hit=cache_hit,
                saved_usd=rng.uniform(0, 0.05) if cache_hit else 0.0,
                latency_seconds=rng.lognormvariate(-1, 1),
            )
        )
    return events


def expected(events: Sequence[UsageEvent], by: Sequence[str] = ALL_KEYS) -> list[UsageRow]:
    """What the ledger must answer: the same events aggregated in memory."""
    return summarize(list(aggregate(events).items()), by)


async def stored(store: Store, by: Sequence[str] = ALL_KEYS) -> list[UsageRow]:
    """What the ledger answers for the whole test window."""
    return await usage_rows(store, *WINDOW, by)
