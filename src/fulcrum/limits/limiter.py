"""The admission stage: per-tenant rate limits and budgets over a memory or Redis backend.

Admission costs one backend call, shared with the requests admitted at the same time (the
Redis backend sends concurrent asks together in one EVALSHA); settlements are queued and sent
in batches. When the shared backend is unreachable the limiter either admits
against a local memory backend with the same limits (``fail_open``: limits become
per-replica) or refuses with a 503 (``fail_closed``). Either way it logs once per outage,
counts every affected request, and tries the shared backend again at most every
``retry_interval`` seconds, so an outage never costs each request a connect timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Literal

from prometheus_client import Counter

from fulcrum.auth.principal import Principal
from fulcrum.config import LimitsConfig, RedisConfig
from fulcrum.limits.admission import Demand, Reservation
from fulcrum.limits.backend import LimitBackend
from fulcrum.limits.checks import Ask, Periods, Plan, Settlement, Verdict
from fulcrum.limits.headers import rate_headers
from fulcrum.limits.memory import MemoryBackend
from fulcrum.limits.plans import build_plan, micros_estimate
from fulcrum.limits.rejections import rejected, too_large, unavailable
from fulcrum.limits.settlement import SettlementQueue
from fulcrum.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

OnBackendError = Literal["fail_open", "fail_closed"]
_PLAN_CACHE_SIZE = 10_000
_EMPTY: Mapping[str, str] = {}


class _Unlimited:
    """The reservation of a request no limit applies to (e.g. a model without per-model limits
    for a tenant whose only limits are per model)."""

    headers = _EMPTY

    async def settle(self, tokens: int, cost_usd: float) -> None:
        return None


UNLIMITED = _Unlimited()


class _Reservation:
    """What one admitted request holds; settles exactly once, on the backend that admitted it."""

    __slots__ = ("_ask", "_backend", "_limiter", "_periods", "_settled", "headers")

    def __init__(
        self,
        limiter: RateLimiter,
        backend: LimitBackend,
        ask: Ask,
        periods: Periods,
        headers: Mapping[str, str],
    ) -> None:
        self._limiter = limiter
        self._backend = backend
        self._ask = ask
        self._periods = periods
        self._settled = False
        self.headers = headers

    async def settle(self, tokens: int, cost_usd: float) -> None:
        if self._settled:
            return
        self._settled = True
        cost = max(0, round(cost_usd * 1_000_000))
        settlement = Settlement(self._ask, self._periods, max(0, tokens), cost)
        await self._limiter._settle(self._backend, settlement)


class RateLimiter:
    """Implements :class:`fulcrum.limits.admission.Admission` over a LimitBackend."""

    def __init__(
        self,
        backend: LimitBackend,
        *,
        fallback: LimitBackend | None = None,
        on_backend_error: OnBackendError = "fail_open",
        metrics: GatewayMetrics,
        retry_interval: float = 1.0,
        deadline: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.fallback = fallback
        self.on_backend_error = on_backend_error
        self.metrics = metrics
        self.retry_interval = retry_interval
        self.deadline = deadline  # bound on one backend call, on top of the client's timeouts
        self._monotonic = monotonic
        self._nonce = os.urandom(6).hex()
        self._ids = itertools.count(1)
        self._plans: dict[tuple[str, str | None, str], tuple[object, Plan]] = {}
        self._up = True
        self._retry_at = 0.0
        self._dropped = 0
        self._errors: dict[str, Counter] = {}
        self._queue = (
            SettlementQueue(backend, self, self._count_dropped) if backend.remote else None
        )
        metrics.ratelimit_backend_up.set(1)

    @property
    def up(self) -> bool:
        """Whether the primary backend answered last time it was asked."""
        return self._up

    # -- Admission ------------------------------------------------------------------------

    async def admit(self, principal: Principal, demand: Demand) -> Reservation:
        plan = self._plan(principal, demand.model)
        if plan.empty:
            return UNLIMITED
        for scope in plan.scopes:
            if scope.tpm is not None and demand.tokens > scope.tpm:
                self._count_rejection("tpm", scope.kind)
                raise too_large(scope, plan.tenant, demand.tokens)
        ask = Ask(
            f"{self._nonce}{next(self._ids):x}",
            plan,
            max(0, demand.tokens),
            micros_estimate(demand.cost_usd),
        )
        backend, verdict = await self._decide(ask)
        if verdict.refusal is not None:
            refusal = verdict.refusal
            kind = "tenant" if refusal.scope < 0 else plan.scopes[refusal.scope].kind
            self._count_rejection(refusal.limit, kind)
            raise rejected(ask, verdict)
        headers = rate_headers(plan, verdict.usage) if plan.scopes else _EMPTY
        return _Reservation(self, backend, ask, verdict.periods, headers)

    def _plan(self, principal: Principal, model: str) -> Plan:
        """The request's checks, cached per (tenant, key, model) while the policy is the same."""
        key = (principal.tenant, principal.key_id, model)
        cached = self._plans.get(key)
        if cached is not None and cached[0] is principal.policy:
            return cached[1]
        plan = build_plan(principal, model)
        if len(self._plans) >= _PLAN_CACHE_SIZE:
            self._plans.clear()
        self._plans[key] = (principal.policy, plan)
        return plan

    async def _decide(self, ask: Ask) -> tuple[LimitBackend, Verdict]:
        backend = self.backend
        if not backend.remote:
            return backend, await backend.admit(ask)
        if not self.may_try():
            return await self._degraded(ask)
        if not self._up:
            self._retry_at = self._monotonic() + self.retry_interval  # one probe at a time
        try:
            if self.deadline is None:
                verdict = await backend.admit(ask)
            else:
                async with asyncio.timeout(self.deadline):
                    verdict = await backend.admit(ask)
        except Exception as exc:  # any backend fault: the outage policy decides
            self.failed(exc)
            return await self._degraded(ask)
        self.succeeded()
        return backend, verdict

    async def _degraded(self, ask: Ask) -> tuple[LimitBackend, Verdict]:
        if self.on_backend_error == "fail_closed" or self.fallback is None:
            self._count_error("fail_closed")
            raise unavailable(max(self.retry_interval, self._retry_at - self._monotonic()))
        self._count_error("fail_open")
        return self.fallback, await self.fallback.admit(ask)

    # -- Backend health (also consulted by the settlement queue) ----------------------------

    def may_try(self) -> bool:
        return self._up or self._monotonic() >= self._retry_at

    def failed(self, error: Exception) -> None:
        self._retry_at = self._monotonic() + self.retry_interval
        if self._up:
            self._up = False
            self.metrics.ratelimit_backend_up.set(0)
            policy = (
                "limits are local to each replica"
                if self.on_backend_error == "fail_open" and self.fallback is not None
                else "requests under limits are refused"
            )
            log.warning(
                "rate limits: the shared backend is unreachable (%s: %s); %s until it answers",
                type(error).__name__,
                error,
                policy,
            )

    def succeeded(self) -> None:
        if not self._up:
            self._up = True
            self.metrics.ratelimit_backend_up.set(1)
            log.info(
                "rate limits: the shared backend answers again; limits are shared again "
                "(%d settlements were dropped meanwhile)",
                self._dropped,
            )
            self._dropped = 0
            if self._queue is not None:
                self._queue.kick()  # what queued up during the outage

    # -- Settlement ---------------------------------------------------------------------------

    async def _settle(self, backend: LimitBackend, settlement: Settlement) -> None:
        if backend is self.backend and self._queue is not None:
            self._queue.put(settlement)
            return
        try:
            await backend.settle((settlement,))
        except Exception:  # a local backend does not fail; never let a settle raise anyway
            log.exception("rate limits: settling on %s failed", type(backend).__name__)

    async def flush(self) -> None:
        """Wait until queued settlements were sent (tests; shutdown uses ``aclose``)."""
        if self._queue is not None:
            await self._queue.flush()

    async def aclose(self) -> None:
        """Send what is pending, then close the backends."""
        if self._queue is not None:
            await self._queue.drain()
        for backend in (self.backend, self.fallback):
            if backend is not None:
                try:
                    await backend.aclose()
                except Exception as exc:
                    log.warning("rate limits: closing %s: %s", type(backend).__name__, exc)

    # -- Metrics ------------------------------------------------------------------------------

    def _count_error(self, action: str) -> None:
        child = self._errors.get(action)
        if child is None:
            child = self._errors[action] = self.metrics.ratelimit_backend_errors.labels(action)
        child.inc()

    def _count_dropped(self, count: int) -> None:
        self._dropped += count
        self.metrics.ratelimit_backend_errors.labels("settle_dropped").inc(count)

    def _count_rejection(self, limit: str, scope: str) -> None:
        self.metrics.ratelimit_rejections.labels(limit, scope).inc()


def build_limiter(
    limits: LimitsConfig, redis: RedisConfig | None, metrics: GatewayMetrics
) -> RateLimiter:
    """The limiter the configuration asks for (no connection is made until the first request)."""
    if limits.backend == "memory":
        return RateLimiter(MemoryBackend(), metrics=metrics)
    if redis is None:
        raise ValueError("limits.backend 'redis' needs a redis configuration")
    from fulcrum.limits.redis_backend import RedisBackend  # only Redis deployments import it

    # The backend bounds each script call by the client's timeouts itself (one timer per batch
    # of coalesced admissions instead of one per request), so the limiter sets no deadline.
    return RateLimiter(
        RedisBackend.from_config(redis),
        fallback=MemoryBackend() if limits.on_backend_error == "fail_open" else None,
        on_backend_error=limits.on_backend_error,
        metrics=metrics,
        retry_interval=redis.retry_interval,
    )
