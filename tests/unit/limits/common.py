"""Helpers shared by the limit tests: principals with policies, a settable clock, demands."""

from __future__ import annotations

from typing import Any

from fulcrum.api.errors import ApiError
from fulcrum.auth.principal import Principal
from fulcrum.config import TenantConfig, TenantLimits
from fulcrum.limits.admission import Admission, Demand, Reservation
from fulcrum.telemetry.metrics import GatewayMetrics

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Clock:
    """A wall clock the test moves by hand (seconds since the epoch)."""

    def __init__(self, now: float = T0 + 3600) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def principal(tenant: str = "acme", key_id: str | None = None, **limits: Any) -> Principal:
    """A principal whose tenant has ``TenantLimits(**limits)``."""
    policy = TenantConfig(limits=TenantLimits.model_validate(limits))
    return Principal(tenant=tenant, subject=f"{tenant}-user", policy=policy, key_id=key_id)


def demand(tokens: int = 10, model: str = "m", cost_usd: float = 0.0) -> Demand:
    return Demand(model=model, tokens=tokens, cost_usd=cost_usd)


async def try_admit(limiter: Admission, who: Principal, ask: Demand) -> Reservation | ApiError:
    """The reservation, or the ApiError the limiter raised."""
    try:
        return await limiter.admit(who, ask)
    except ApiError as exc:
        return exc


async def admit_many(limiter: Admission, who: Principal, ask: Demand, count: int) -> int:
    """How many of ``count`` admissions succeed (sequentially)."""
    admitted = 0
    for _ in range(count):
        if not isinstance(await try_admit(limiter, who, ask), ApiError):
            admitted += 1
    return admitted


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    """The current value of one series (0 when it was never touched)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


def rejections(metrics: GatewayMetrics, limit: str, scope: str) -> float:
    return sample(metrics, "fulcrum_ratelimit_rejections_total", limit=limit, scope=scope)


def backend_errors(metrics: GatewayMetrics, action: str) -> float:
    return sample(metrics, "fulcrum_ratelimit_backend_errors_total", action=action)


def backend_up(metrics: GatewayMetrics) -> float:
    return sample(metrics, "fulcrum_ratelimit_backend_up")
