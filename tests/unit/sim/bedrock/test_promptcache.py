"""Prompt-cache accounting: first call writes, repeats read, expiry and minimum size."""

from __future__ import annotations

from fulcrum.sim.bedrock.promptcache import CacheCharge, PromptCache
from fulcrum.sim.bedrock.protocol import CachePoint


def test_write_then_read_then_expire() -> None:
    cache = PromptCache()
    point = CachePoint(b"k1", 2000, 300.0)
    assert cache.charge([point], 1024, now=0.0) == CacheCharge(read=0, write=2000)
    assert cache.charge([point], 1024, now=100.0) == CacheCharge(read=2000, write=0)
    # the read refreshed the TTL to t=400
    assert cache.charge([point], 1024, now=399.0) == CacheCharge(read=2000, write=0)
    assert cache.charge([point], 1024, now=2000.0) == CacheCharge(read=0, write=2000)


def test_longest_cached_prefix_is_read_and_the_rest_written() -> None:
    cache = PromptCache()
    system = CachePoint(b"sys", 1500, 300.0)
    history = CachePoint(b"hist", 4000, 300.0)
    cache.charge([system], 1024, now=0.0)
    assert cache.charge([system, history], 1024, now=1.0) == CacheCharge(read=1500, write=2500)
    assert cache.charge([system, history], 1024, now=2.0) == CacheCharge(read=4000, write=0)


def test_checkpoints_below_the_minimum_have_no_effect() -> None:
    cache = PromptCache()
    assert cache.charge([CachePoint(b"small", 100, 300.0)], 1024, now=0.0) == CacheCharge(0, 0)
    assert len(cache) == 0


def test_cache_is_bounded() -> None:
    cache = PromptCache(max_entries=3)
    for i in range(5):
        cache.charge([CachePoint(bytes([i]), 2000, 300.0)], 0, now=0.0)
    assert len(cache) == 3
    assert cache.charge([CachePoint(bytes([0]), 2000, 300.0)], 0, now=1.0).write == 2000
