"""Events: which hour they count in and which backend a deployment is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from fulcrum.telemetry.ledger.record import backend_of, floor_hour, hour_of, hour_start

T = datetime(2026, 3, 1, 9, 59, 59, 999_999, tzinfo=UTC)


def test_hour_of_datetimes_and_epoch_seconds_agree() -> None:
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert hour_of(T) == hour_of(T.timestamp()) == int(start.timestamp())
    assert hour_of(T + timedelta(microseconds=1)) == int(start.timestamp()) + 3600
    assert hour_start(hour_of(T)) == start


def test_naive_is_utc_and_offsets_are_converted() -> None:
    assert hour_of(T.replace(tzinfo=None)) == hour_of(T)
    paris = T.astimezone(timezone(timedelta(hours=1)))
    assert hour_of(paris) == hour_of(T)
    assert floor_hour(datetime(2026, 3, 1, 10, 30)) == datetime(2026, 3, 1, 10, tzinfo=UTC)


def test_backend_of_a_deployment() -> None:
    assert backend_of(True) == "self_hosted"
    assert backend_of(False) == "bedrock"
    assert backend_of(None) == "none"
