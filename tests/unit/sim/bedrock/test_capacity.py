"""Sliding 60-second windows: admission, settlement, expiry — with explicit times."""

from __future__ import annotations

from fulcrum.sim.bedrock.capacity import REQUESTS, TOKENS, Entry, Limiter, SlidingWindow


def _admit(
    window: SlidingWindow, now: float, tokens: int, rpm: int | None, tpm: int | None
) -> Entry:
    result = window.try_admit(now, tokens, rpm, tpm)
    assert isinstance(result, Entry), result
    return result


def test_tokens_per_minute_capacity_refuses_beyond_the_window_total() -> None:
    window = SlidingWindow()
    _admit(window, 0.0, 600, None, 1000)
    _admit(window, 10.0, 400, None, 1000)
    assert window.try_admit(20.0, 1, None, 1000) == TOKENS
    # a rejected request is not counted
    assert (window.usage(20.0).requests, window.usage(20.0).tokens) == (2, 1000)


def test_entries_leave_the_window_sixty_seconds_after_admission() -> None:
    window = SlidingWindow()
    _admit(window, 0.0, 600, None, 1000)
    _admit(window, 30.0, 400, None, 1000)
    assert window.try_admit(59.9, 100, None, 1000) == TOKENS
    _admit(window, 60.0, 500, None, 1000)  # the first entry (600) expired at t=60
    assert window.usage(60.0).tokens == 900
    assert window.usage(90.0).tokens == 500


def test_requests_per_minute_quota() -> None:
    window = SlidingWindow()
    for t in range(3):
        _admit(window, float(t), 0, 3, None)
    assert window.try_admit(3.0, 0, 3, None) == REQUESTS
    _admit(window, 60.0, 0, 3, None)


def test_settlement_replaces_the_estimate_by_the_real_count() -> None:
    window = SlidingWindow()
    entry = _admit(window, 0.0, 900, None, 1000)  # input + maxTokens reserved
    assert window.try_admit(1.0, 200, None, 1000) == TOKENS
    window.settle(entry, 150)  # the reply was short
    assert window.usage(1.0).tokens == 150
    _admit(window, 1.0, 200, None, 1000)
    assert window.usage(1.0).tokens == 350


def test_settling_an_expired_entry_changes_nothing() -> None:
    window = SlidingWindow()
    entry = _admit(window, 0.0, 100, None, 1000)
    assert window.usage(61.0).tokens == 0
    window.settle(entry, 999)
    assert window.usage(61.0).tokens == 0


def test_unlimited_keys_always_admit() -> None:
    window = SlidingWindow()
    for t in range(100):
        _admit(window, float(t) / 10, 10**9, None, None)


def test_limiter_keeps_one_window_per_key() -> None:
    limiter = Limiter()
    _admit(limiter.window("a"), 0.0, 10, None, 10)
    _admit(limiter.window("b"), 0.0, 10, None, 10)
    assert limiter.window("a").try_admit(0.0, 1, None, 10) == TOKENS
    snapshot = limiter.snapshot(0.0)
    assert snapshot["a"].tokens == snapshot["b"].tokens == 10
    limiter.reset()
    assert limiter.snapshot(0.0) == {}
