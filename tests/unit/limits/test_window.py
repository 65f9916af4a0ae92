"""Pure pieces: the sliding-window log, leases, UTC periods and OpenAI duration format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulcrum.limits.headers import format_duration, retry_headers
from fulcrum.limits.periods import periods_at
from fulcrum.limits.window import Leases, SlidingWindow


def test_entries_leave_exactly_one_window_later() -> None:
    window = SlidingWindow(60_000)
    window.add("a", 1_000, 5)
    window.add("b", 30_000, 7)
    window.prune(60_999)
    assert (window.requests, window.tokens) == (2, 12)
    window.prune(61_000)  # "a" was admitted exactly 60 s ago: it has left
    assert (window.requests, window.tokens) == (1, 7)
    window.prune(90_000)
    assert (window.requests, window.tokens) == (0, 0)


def test_replace_swaps_the_estimate_for_real_tokens_only_while_in_the_window() -> None:
    window = SlidingWindow(60_000)
    window.add("a", 0, 100)
    window.replace("a", 30)
    assert window.tokens == 30
    window.prune(60_000)
    window.replace("a", 500)  # settled after it expired: nothing to correct
    assert window.tokens == 0


def test_retry_times_point_at_the_entries_that_must_leave() -> None:
    window = SlidingWindow(60_000)
    for index, at in enumerate((0, 10_000, 20_000)):
        window.add(str(index), at, 100)
    now = 30_000
    assert window.retry_requests_ms(3, now) == 30_000  # the oldest must leave
    assert window.retry_requests_ms(2, now) == 40_000  # two must leave
    assert window.retry_requests_ms(4, now) == 0
    # 300 used of 350: 250 more need the two oldest (200 tokens) gone, 100 more only one
    assert window.retry_tokens_ms(350, 250, now) == 40_000
    assert window.retry_tokens_ms(350, 100, now) == 30_000
    assert window.retry_tokens_ms(350, 50, now) == 0
    assert window.reset_ms(now) == 30_000
    assert SlidingWindow().reset_ms(now) == 0


def test_clock_stepping_back_keeps_entries_ordered() -> None:
    window = SlidingWindow(60_000)
    window.add("a", 10_000, 1)
    window.add("b", 5_000, 1)  # wall clock stepped back
    window.prune(70_000)
    assert window.requests == 0


def test_leases_expire_and_release() -> None:
    leases = Leases(ttl_ms=1_000)
    leases.add("a", 0)
    leases.add("b", 500)
    leases.release("a")
    leases.release("missing")
    assert len(leases) == 1
    leases.prune(1_499)
    assert len(leases) == 1
    leases.prune(1_500)
    assert len(leases) == 0


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (-5, "0s"),
        (20, "20ms"),
        (999, "999ms"),
        (1_000, "1s"),
        (1_200, "1.2s"),
        (7_660, "7.66s"),
        (59_999, "59.999s"),
        (60_000, "1m0s"),
        (360_000, "6m0s"),
        (83_400, "1m23.4s"),
        (3_723_000, "1h2m3s"),
        (3_600_000, "1h0m0s"),
    ],
)
def test_durations_are_formatted_like_openai(ms: int, text: str) -> None:
    assert format_duration(ms) == text


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    assert retry_headers(0) == {"retry-after": "1", "retry-after-ms": "0"}
    assert retry_headers(1_200) == {"retry-after": "2", "retry-after-ms": "1200"}
    assert retry_headers(3_000)["retry-after"] == "3"


@given(st.integers(min_value=0, max_value=4_102_444_800_000))  # up to 2100
def test_periods_match_the_calendar(now_ms: int) -> None:
    moment = datetime.fromtimestamp(now_ms // 1000, UTC)
    periods = periods_at(now_ms)
    assert periods.day == int(moment.strftime("%Y%m%d"))
    assert periods.month == int(moment.strftime("%Y%m"))
    day_start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    assert periods.day_end_ms == int((day_start + timedelta(days=1)).timestamp()) * 1000
    next_month = (day_start.replace(day=28) + timedelta(days=4)).replace(day=1)
    assert periods.month_end_ms == int(next_month.timestamp()) * 1000


def test_period_edges() -> None:
    leap = int(datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp()) * 1000 + 999
    periods = periods_at(leap)
    assert (periods.day, periods.month) == (20280229, 202802)
    assert periods.day_end_ms == periods.month_end_ms == leap + 1
    assert periods_at(leap + 1).day == 20280301
