"""Outage bookkeeping: fail fast while down, one probe per retry interval, two log lines."""

from __future__ import annotations

import logging

import pytest

from fulcrum.cache.outage import Outage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_skips_calls_until_the_retry_interval_then_lets_one_probe_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    changes: list[bool] = []
    log = logging.getLogger("test.outage")
    outage = Outage("thing", 1.0, log, clock=clock, on_change=changes.append)
    assert outage.may_try()
    with caplog.at_level(logging.INFO, logger="test.outage"):
        outage.failed(ConnectionError("refused"))
        outage.failed(ConnectionError("refused again"))  # concurrent callers: one log line
        assert not outage.may_try()
        clock.now = 0.99
        assert not outage.may_try()
        clock.now = 1.0
        assert outage.may_try()  # the probe
        assert not outage.may_try()  # ...only one
        outage.failed(ConnectionError("still"))
        clock.now = 2.0
        assert outage.may_try()
        outage.succeeded()
        outage.succeeded()
        assert outage.may_try()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "thing is unreachable (ConnectionError: refused)" in messages[0]
    assert messages[1] == "thing answers again"
    assert changes == [False, True]
