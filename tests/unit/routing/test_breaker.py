"""Circuit breaker: every transition, both trip paths, probes, retry hints, change events."""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.routing.breaker import BreakerSettings, CircuitBreaker, State


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(clock: FakeClock, events: list[State] | None = None, **overrides: float) -> CircuitBreaker:
    values: dict[str, float] = {
        "consecutive_failures": 3,
        "failure_rate": 0.5,
        "window": 30.0,
        "min_requests": 10,
        "cooldown": 15.0,
        "half_open_probes": 2,
        "close_after": 2,
        **overrides,
    }
    settings = BreakerSettings(
        consecutive_failures=int(values["consecutive_failures"]),
        failure_rate=values["failure_rate"],
        window=values["window"],
        min_requests=int(values["min_requests"]),
        cooldown=values["cooldown"],
        half_open_probes=int(values["half_open_probes"]),
        close_after=int(values["close_after"]),
    )
    return CircuitBreaker(
        settings, clock=clock, on_change=None if events is None else events.append
    )


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state == "open"


def test_starts_closed_and_allows() -> None:
    breaker = make(FakeClock())
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(100))


def test_consecutive_failures_open_the_breaker() -> None:
    breaker = make(FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = make(FakeClock(), min_requests=100)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    # 10 failures, never 3 in a row; 15 outcomes at a 2/3 failure share would trip the rate
    # path, so it is switched off here by requiring more outcomes than were seen.
    assert breaker.state == "closed"


def test_failure_rate_opens_without_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=100, min_requests=10, failure_rate=0.5)
    for _ in range(4):
        breaker.record_failure()
        breaker.record_success()
    breaker.record_success()
    assert breaker.state == "closed"  # 9 outcomes: below min_requests
    breaker.record_failure()  # 10 outcomes, 5 failures = 0.5
    assert breaker.state == "open"


def test_failure_rate_below_threshold_stays_closed() -> None:
    breaker = make(FakeClock(), consecutive_failures=100, min_requests=10, failure_rate=0.5)
    for _ in range(10):
        breaker.record_success()
        breaker.record_success()
        breaker.record_failure()  # a third of the outcomes fail
    assert breaker.state == "closed"


def test_min_requests_guards_the_rate_path() -> None:
    breaker = make(FakeClock(), consecutive_failures=100, min_requests=10)
    for _ in range(9):
        breaker.record_failure()  # a 100 % failure share, but only 9 outcomes
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"


def test_outcomes_older_than_the_window_do_not_count() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=100, min_requests=10, window=30.0)
    for _ in range(9):
        breaker.record_failure()  # one short of min_requests
    assert breaker.state == "closed"
    clock.advance(31.0)
    for _ in range(9):
        breaker.record_failure()
    # Had the old 9 failures still counted, 18 failures out of 18 would have tripped.
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"


def test_outcomes_inside_the_window_still_count() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=100, min_requests=10, window=30.0)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_success()
    clock.advance(25.0)
    breaker.record_success()
    breaker.record_failure()  # 12 outcomes in 30 s, 6 failures
    assert breaker.state == "open"


def test_open_turns_half_open_after_the_cooldown() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown=15.0)
    trip(breaker)
    clock.advance(14.9)
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state == "half_open"


def test_half_open_allows_a_limited_number_of_probes() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=2)
    trip(breaker)
    clock.advance(15.0)
    assert breaker.allow()
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release()  # a probe's client went away: its slot is free again
    assert breaker.allow()
    assert not breaker.allow()


def test_a_probe_verdict_frees_its_slot() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=1, close_after=3)
    trip(breaker)
    clock.advance(15.0)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state == "half_open"
    assert breaker.allow()


def test_close_after_successes_closes_and_resets_counters() -> None:
    clock = FakeClock()
    breaker = make(clock, close_after=2)
    trip(breaker)
    clock.advance(15.0)
    breaker.allow()
    breaker.allow()
    breaker.record_success()
    assert breaker.state == "half_open"
    breaker.record_success()
    assert breaker.state == "closed"
    # The failures that opened it are forgotten: it takes a full new run to open again.
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_closing_forgets_the_failure_rate_that_opened_it() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=100, min_requests=10, window=30.0)
    for _ in range(10):
        breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(15.0)  # still inside the 30 s window of those ten failures
    breaker.allow()
    breaker.allow()
    breaker.record_success()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.record_failure()  # 1 of 1, far below min_requests once the window was reset
    assert breaker.state == "closed"


def test_any_failure_in_half_open_reopens_with_a_new_cooldown() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown=15.0, close_after=2)
    trip(breaker)
    clock.advance(15.0)
    breaker.allow()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(14.0)
    assert breaker.state == "open"  # the cool-down restarted at the failure
    clock.advance(1.0)
    assert breaker.state == "half_open"
    # Probe successes from before the reopening do not count towards closing.
    breaker.record_success()
    assert breaker.state == "half_open"


def test_verdicts_while_open_are_ignored() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown=15.0)
    trip(breaker)
    clock.advance(10.0)
    breaker.record_success()
    breaker.record_success()
    breaker.record_failure()
    clock.advance(5.0)  # a late failure did not extend the cool-down
    assert breaker.state == "half_open"
    breaker.record_success()  # and late successes did not count as probe successes
    assert breaker.state == "half_open"


def test_cool_down_opens_for_the_hinted_time() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown=15.0)
    breaker.cool_down(40.0)
    assert breaker.state == "open"
    clock.advance(39.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.state == "half_open"


def test_cool_down_never_shortens_an_open_breaker() -> None:
    clock = FakeClock()
    breaker = make(clock, cooldown=15.0)
    trip(breaker)
    breaker.cool_down(2.0)
    clock.advance(14.0)
    assert breaker.state == "open"
    breaker.cool_down(10.0)  # now + 10 > the remaining 1 s: extends
    clock.advance(9.0)
    assert breaker.state == "open"
    clock.advance(1.0)
    assert breaker.state == "half_open"


def test_cool_down_from_half_open_reopens() -> None:
    clock = FakeClock()
    breaker = make(clock)
    trip(breaker)
    clock.advance(15.0)
    assert breaker.allow()
    breaker.cool_down(5.0)
    assert breaker.state == "open"
    clock.advance(5.0)
    assert breaker.state == "half_open"


def test_cool_down_without_a_positive_hint_does_nothing() -> None:
    breaker = make(FakeClock())
    breaker.cool_down(0.0)
    breaker.cool_down(-3.0)
    assert breaker.state == "closed"


def test_on_change_reports_every_transition_once() -> None:
    clock = FakeClock()
    events: list[State] = []
    breaker = make(clock, events)
    breaker.record_success()
    trip(breaker)
    assert breaker.state == "open"  # reading again is not a transition
    clock.advance(15.0)
    breaker.allow()
    breaker.record_failure()
    clock.advance(15.0)
    breaker.allow()
    breaker.record_success()
    breaker.record_success()
    breaker.cool_down(3.0)
    breaker.cool_down(5.0)  # extends, stays open: no event
    assert events == ["open", "half_open", "open", "half_open", "closed", "open"]


def test_release_outside_half_open_is_harmless() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=1)
    breaker.release()
    trip(breaker)
    breaker.release()
    clock.advance(15.0)
    assert breaker.allow()
    assert not breaker.allow()


@pytest.mark.parametrize(
    "field",
    [
        {"consecutive_failures": 0},
        {"failure_rate": 0.0},
        {"failure_rate": 1.5},
        {"window": 0.0},
        {"min_requests": 0},
        {"cooldown": -1.0},
        {"half_open_probes": 0},
        {"close_after": 0},
    ],
)
def test_settings_reject_nonsense(field: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BreakerSettings(**field)
