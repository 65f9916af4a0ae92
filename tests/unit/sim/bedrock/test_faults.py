"""Fault updates are validated as a whole; the RNG and the not-ready window are predictable."""

from __future__ import annotations

import pytest

from fulcrum.sim.bedrock.faults import Faults, FaultState, apply_update
from fulcrum.sim.fault_fields import FaultError


def test_defaults_are_healthy() -> None:
    faults = Faults()
    assert not faults.affects_requests
    assert faults.to_json()["models"] is None


def test_valid_update_is_merged() -> None:
    faults = apply_update(
        Faults(),
        {
            "error_rate": 0.5,
            "error_type": "ThrottlingException",
            "added_latency_ms": 10,
            "stream_exception_after_events": 3,
            "stream_exception_type": "ThrottlingException",
            "models": ["anthropic.claude-3-haiku-20240307-v1:0"],
            "seed": 4,
        },
    )
    assert faults.error_type == "ThrottlingException"
    assert faults.stream_exception_type == "throttlingException"  # normalised to the member name
    assert faults.models == ("anthropic.claude-3-haiku-20240307-v1:0",)
    assert faults.affects_requests
    assert apply_update(faults, {"error_rate": 0}).error_type == "ThrottlingException"


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_rate": True}, "error_rate"),
        ({"error_type": "TeapotException"}, "error_type"),
        ({"error_type": "InvalidSignatureException"}, "error_type"),
        ({"added_latency_ms": -1}, "added_latency_ms"),
        ({"model_not_ready_for_s": "soon"}, "model_not_ready_for_s"),
        ({"stream_exception_after_events": -1}, "stream_exception_after_events"),
        ({"stream_exception_after_events": 1.5}, "stream_exception_after_events"),
        ({"stream_exception_type": "accessDeniedException"}, "stream_exception_type"),
        ({"models": "m"}, "models"),
        ({"error_message": ""}, "error_message"),
        ({"nope": 1}, "unknown field"),
    ],
)
def test_invalid_updates_name_the_field(update: dict[str, object], field: str) -> None:
    with pytest.raises(FaultError, match=field):
        apply_update(Faults(), update)


def test_body_must_be_an_object() -> None:
    with pytest.raises(FaultError, match="object"):
        apply_update(Faults(), [1])


def test_error_draws_are_reproducible_per_seed() -> None:
    state = FaultState()

    def pattern() -> list[bool]:
        state.set(Faults(error_rate=0.5, seed=9))
        return [state.draw_error() for _ in range(40)]

    first = pattern()
    assert any(first) and not all(first)
    assert pattern() == first
    state.set(Faults(error_rate=1.0))
    assert all(state.draw_error() for _ in range(10))
    state.set(Faults())
    assert not any(state.draw_error() for _ in range(10))


def test_model_not_ready_lasts_for_the_given_span() -> None:
    now = [100.0]
    state = FaultState(clock=lambda: now[0])
    state.set(Faults(model_not_ready_for_s=5.0))
    assert state.not_ready() and state.not_ready_remaining_s() == 5.0
    now[0] = 104.9
    assert state.not_ready()
    now[0] = 105.0
    assert not state.not_ready() and state.not_ready_remaining_s() == 0.0
    state.set(Faults())
    assert not state.not_ready()


def test_model_filter() -> None:
    state = FaultState()
    state.set(Faults(models=("base-model",)))
    assert state.applies_to("us.base-model", "base-model")
    assert not state.applies_to("other", "other")
    state.set(Faults())
    assert state.applies_to("anything", "anything")
