"""The in-memory backend: LRU bounded by bytes, TTL by an injected clock."""

from __future__ import annotations

import pytest

from fulcrum.cache.memory import ENTRY_OVERHEAD, MemoryCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cost(key: str, value: bytes) -> int:
    return len(key) + len(value) + ENTRY_OVERHEAD


def make(max_bytes: int, ttl: float = 60.0, max_entry: int = 10_000) -> tuple[MemoryCache, Clock]:
    clock = Clock()
    return MemoryCache(max_bytes, ttl, max_entry, clock=clock), clock


async def test_a_value_round_trips_and_is_charged_its_size() -> None:
    cache, _ = make(10_000)
    assert await cache.set("k1", b"v" * 100)
    assert await cache.get("k1") == b"v" * 100
    assert await cache.get("k2") is None
    assert cache.bytes_used == cost("k1", b"v" * 100)


async def test_least_recently_used_entries_go_first_once_the_bytes_run_out() -> None:
    value = b"x" * 100
    cache, _ = make(3 * cost("k1", value))
    for key in ("k1", "k2", "k3"):
        assert await cache.set(key, value)
    assert await cache.get("k1") == value  # k1 is now the most recently used
    assert await cache.set("k4", value)
    assert await cache.get("k2") is None  # the least recently used went
    assert [await cache.get(k) is not None for k in ("k1", "k3", "k4")] == [True] * 3
    assert cache.bytes_used == 3 * cost("k1", value) <= cache.max_bytes


async def test_one_large_entry_evicts_as_many_small_ones_as_needed() -> None:
    small = b"s" * 50
    cache, _ = make(10 * cost("k0", small))
    for index in range(10):
        assert await cache.set(f"k{index}", small)
    big = b"b" * (6 * cost("k0", small))
    assert await cache.set("kb", big)
    assert cache.bytes_used <= cache.max_bytes
    assert await cache.get("kb") == big
    kept = [index for index in range(10) if await cache.get(f"k{index}") is not None]
    assert kept == list(range(10 - len(kept), 10))  # the newest survived
    assert len(kept) == 3


async def test_replacing_a_key_recharges_it() -> None:
    cache, _ = make(10_000)
    await cache.set("k", b"a" * 500)
    await cache.set("k", b"b" * 10)
    assert await cache.get("k") == b"b" * 10
    assert len(cache) == 1
    assert cache.bytes_used == cost("k", b"b" * 10)


async def test_entries_above_the_per_entry_limit_are_not_stored() -> None:
    cache, _ = make(10_000, max_entry=100)
    assert not await cache.set("k", b"x" * 101)
    assert await cache.get("k") is None
    assert await cache.set("k", b"x" * 100)
    assert cache.bytes_used == cost("k", b"x" * 100)


async def test_an_entry_larger_than_the_whole_budget_is_not_stored_and_evicts_nothing() -> None:
    cache, _ = make(cost("k", b"x" * 100), max_entry=10_000)
    assert await cache.set("k", b"x" * 100)
    assert not await cache.set("big", b"y" * 200)
    assert await cache.get("k") == b"x" * 100


async def test_entries_expire_after_the_ttl() -> None:
    cache, clock = make(10_000, ttl=30)
    await cache.set("k", b"v")
    clock.now += 29.9
    assert await cache.get("k") == b"v"
    clock.now += 0.1
    assert await cache.get("k") is None
    assert len(cache) == 0 and cache.bytes_used == 0


async def test_reading_does_not_extend_the_ttl() -> None:
    cache, clock = make(10_000, ttl=30)
    await cache.set("k", b"v")
    clock.now += 20
    assert await cache.get("k") == b"v"
    clock.now += 20
    assert await cache.get("k") is None


async def test_expired_entries_at_the_cold_end_are_swept_when_storing() -> None:
    cache, clock = make(10_000, ttl=30)
    await cache.set("old1", b"v")
    await cache.set("old2", b"v")
    clock.now += 31
    await cache.set("new", b"v")
    assert len(cache) == 1
    assert cache.bytes_used == cost("new", b"v")


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MemoryCache(0, 1, 1)
