"""Events into hourly buckets, and merges that do not depend on order."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.telemetry.ledger import latency
from fulcrum.telemetry.ledger.aggregate import (
    BucketKey,
    Totals,
    aggregate,
    key_of,
    merge_buckets,
    merged,
)
from fulcrum.telemetry.ledger.record import UsageEvent

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC).timestamp()


def event(**changes: object) -> UsageEvent:
    fields: dict[str, object] = {
        "time": T0 + 60,
        "tenant": "acme",
        "model": "chat",
        "deployment": "vllm-a",
        "backend": "self_hosted",
        "workload": "interactive",
        "input_tokens": 100,
        "output_tokens": 20,
        "cached_tokens": 30,
        "cost_usd": 0.1,
        "latency_seconds": 0.25,
    }
    fields.update(changes)
    return UsageEvent(**fields)  # type: ignore[arg-type]


def test_events_of_one_key_and_hour_share_a_bucket() -> None:
    buckets = aggregate(
        [
            event(),
            event(time=T0 + 3599, cost_usd=0.2, error=True, latency_seconds=2.0),
            event(cache_hit=True, input_tokens=0, output_tokens=0, cached_tokens=0,
                  cost_usd=0.0, saved_usd=0.05, latency_seconds=None),
        ]
    )  # fmt: skip
    key = BucketKey(int(T0), "acme", "chat", "vllm-a", "self_hosted", "interactive")
    assert list(buckets) == [key]
    totals = buckets[key]
    assert (totals.requests, totals.input_tokens, totals.output_tokens) == (3, 200, 40)
    assert (totals.cached_tokens, totals.errors, totals.cache_hits) == (60, 1, 1)
    assert totals.cost_nanousd == 300_000_000  # 0.1 + 0.2 exactly, not 0.30000000000000004
    assert totals.saved_usd == 0.05
    # two latencies measured, the cache hit's was not
    assert sum(totals.latency.values()) == 2
    assert totals.latency == latency.histogram_of([0.25, 2.0])


def test_each_key_field_and_the_hour_split_buckets() -> None:
    base = event()
    variants = [
        event(time=T0 + 3600),
        event(tenant="globex"),
        event(model="embed"),
        event(deployment="bedrock-b"),
        event(backend="bedrock"),
        event(workload="batch"),
    ]
    buckets = aggregate([base, *variants])
    assert len(buckets) == 7
    assert all(totals.requests == 1 for totals in buckets.values())
    assert key_of(base) == key_of(event(time=datetime.fromtimestamp(T0 + 1800, UTC)))


event_strategy = st.builds(
    event,
    time=st.floats(min_value=T0, max_value=T0 + 5 * 3600),
    tenant=st.sampled_from(["acme", "globex"]),
    model=st.sampled_from(["chat", "embed"]),
    backend=st.sampled_from(["bedrock", "self_hosted", "none"]),
    workload=st.sampled_from(["interactive", "batch"]),
    input_tokens=st.integers(0, 10_000),
    output_tokens=st.integers(0, 10_000),
    cached_tokens=st.integers(0, 100),
    cost_usd=st.floats(0, 5, allow_nan=False),
    error=st.booleans(),
    cache_hit=st.booleans(),
    saved_usd=st.floats(0, 5, allow_nan=False),
    latency_seconds=st.none() | st.floats(0, 120, allow_nan=False),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(event_strategy, max_size=60), st.integers(1, 5), st.randoms())
def test_merging_partial_aggregates_in_any_order_equals_aggregating_everything(
    events: list[UsageEvent], parts: int, rng: random.Random
) -> None:
    # events split over flushes/replicas at random, the partial aggregates merged in any order
    split: list[list[UsageEvent]] = [[] for _ in range(parts)]
    for item in events:
        split[rng.randrange(parts)].append(item)
    partials = [aggregate(part) for part in split]
    rng.shuffle(partials)
    snapshot = [{key: merged(totals) for key, totals in part.items()} for part in partials]
    assert merge_buckets(*partials) == aggregate(events)
    assert merge_buckets(*reversed(partials)) == aggregate(events)
    assert partials == snapshot  # the inputs were not changed


def test_absorb_adds_every_field_and_leaves_the_other_alone() -> None:
    a = Totals(1, 2, 3, 4, 5, 6, 7, 8, {1: 1, 5: 2})
    b = Totals(10, 20, 30, 40, 50, 60, 70, 80, {5: 1, 9: 4})
    a.absorb(b)
    assert a == Totals(11, 22, 33, 44, 55, 66, 77, 88, {1: 1, 5: 3, 9: 4})
    assert b == Totals(10, 20, 30, 40, 50, 60, 70, 80, {5: 1, 9: 4})
