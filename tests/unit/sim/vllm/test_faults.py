"""Fault updates are validated as a whole, and injected errors are reproducible."""

from __future__ import annotations

import pytest

from fulcrum.sim.fault_fields import FaultError
from fulcrum.sim.vllm.faults import Faults, FaultState, apply_update


def test_defaults_are_healthy() -> None:
    faults = Faults()
    assert not faults.affects_requests
    assert faults.to_json() == {
        "error_rate": 0.0,
        "error_status": 500,
        "error_message": "Injected fault",
        "added_latency_ms": 0.0,
        "refuse_connections": False,
        "cut_stream_after_chunks": None,
        "not_ready": False,
        "seed": 0,
    }


def test_update_merges_into_the_current_set() -> None:
    first = apply_update(Faults(), {"error_rate": 1, "error_status": 503})
    second = apply_update(first, {"not_ready": True})
    assert (second.error_rate, second.error_status, second.not_ready) == (1.0, 503, True)
    assert apply_update(second, {"cut_stream_after_chunks": None}).cut_stream_after_chunks is None


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ([], "JSON object"),
        ({"nope": 1}, "unknown field"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_rate": "high"}, "error_rate"),
        ({"error_status": 200}, "error_status"),
        ({"error_status": True}, "error_status"),
        ({"added_latency_ms": -1}, "added_latency_ms"),
        ({"cut_stream_after_chunks": -1}, "cut_stream_after_chunks"),
        ({"cut_stream_after_chunks": 2.5}, "cut_stream_after_chunks"),
        ({"not_ready": 1}, "not_ready"),
        ({"refuse_connections": "yes"}, "refuse_connections"),
        ({"error_message": 5}, "error_message"),
    ],
)
def test_invalid_updates_are_rejected_with_the_field_named(update: object, message: str) -> None:
    with pytest.raises(FaultError, match=message):
        apply_update(Faults(), update)


def test_error_rate_extremes_need_no_randomness() -> None:
    state = FaultState()
    assert not any(state.draw_error() for _ in range(100))
    state.set(Faults(error_rate=1.0))
    assert all(state.draw_error() for _ in range(100))


def test_partial_error_rate_is_reproducible_from_the_seed() -> None:
    state = FaultState()
    state.set(Faults(error_rate=0.5, seed=7))
    first = [state.draw_error() for _ in range(50)]
    state.set(Faults(error_rate=0.5, seed=7))
    assert [state.draw_error() for _ in range(50)] == first
    assert 0 < sum(first) < 50
    state.set(Faults(error_rate=0.5, seed=8))
    assert [state.draw_error() for _ in range(50)] != first
