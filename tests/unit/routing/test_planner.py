"""Planner: configured order, known-unhealthy deployments last, unknown models 404."""

from __future__ import annotations

import pytest

from fulcrum.api.errors import ApiError
from fulcrum.auth.principal import ANONYMOUS
from fulcrum.routing.health import HealthRegistry
from fulcrum.routing.planner import Planner
from fulcrum.schema.openai import Endpoint, InferenceRequest


def request(model: str) -> InferenceRequest:
    return InferenceRequest(Endpoint.CHAT, model, {}, stream=False, client_wants_usage=False)


def test_configured_order_while_all_usable() -> None:
    health = HealthRegistry(["a", "b", "c"])
    planner = Planner({"m": ["b", "a", "c"]}, health)
    assert planner.plan(ANONYMOUS, request("m")) == ["b", "a", "c"]


def test_unhealthy_moves_to_the_end_and_back() -> None:
    health = HealthRegistry(["a", "b"])
    planner = Planner({"m": ["a", "b"]}, health)
    health.mark("a", False)
    assert planner.plan(ANONYMOUS, request("m")) == ["b", "a"]
    health.mark("a", True)
    assert planner.plan(ANONYMOUS, request("m")) == ["a", "b"]


def test_unknown_model_is_404() -> None:
    planner = Planner({"m": ["a"]}, HealthRegistry(["a"]))
    with pytest.raises(ApiError) as info:
        planner.plan(ANONYMOUS, request("other"))
    assert info.value.status == 404
    assert info.value.code == "model_not_found"


def test_readiness_needs_a_positive_signal() -> None:
    changes: list[tuple[str, bool]] = []
    health = HealthRegistry(["a", "b"], listener=lambda name, ok: changes.append((name, ok)))
    assert not health.any_healthy()
    assert health.usable("a")
    health.mark("b", True)
    health.mark("b", True)
    assert health.any_healthy()
    assert changes == [("b", True)]


def test_passive_failure_expires_after_the_cooldown() -> None:
    now = [100.0]
    health = HealthRegistry(["a", "b"], cooldown=10.0, clock=lambda: now[0])
    planner = Planner({"m": ["a", "b"]}, health)
    health.mark("a", True)
    health.mark("a", False, passive=True)
    assert planner.plan(ANONYMOUS, request("m")) == ["b", "a"]
    assert not health.any_healthy()
    now[0] = 110.0
    assert planner.plan(ANONYMOUS, request("m")) == ["a", "b"]
    assert health.any_healthy()


def test_active_failure_does_not_expire() -> None:
    now = [0.0]
    health = HealthRegistry(["a"], cooldown=1.0, clock=lambda: now[0])
    health.mark("a", False)
    now[0] = 1000.0
    assert not health.usable("a")
    assert health.snapshot() == {"a": False}
