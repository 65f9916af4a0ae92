"""The path of one request: authenticate → admit → cache → plan → call → account.

Each stage is an object handed in by the composition root (``app.py``); optional stages that
are switched off are ``None`` and cost nothing. The pipeline knows no HTTP: the API layer
feeds it validated requests and writes what it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from fulcrum.api.errors import ApiError, UpstreamError
from fulcrum.auth.principal import Principal
from fulcrum.auth.static_keys import Authenticator
from fulcrum.cache.prompt_cache import PromptCache
from fulcrum.config import DeploymentTags
from fulcrum.limits.admission import Admission, Reservation
from fulcrum.providers.base import Completion, CompletionStream, Provider, Usage
from fulcrum.routing.health import HealthRegistry
from fulcrum.routing.planner import Planner
from fulcrum.schema.openai import InferenceRequest
from fulcrum.telemetry.metrics import GatewayMetrics

log = logging.getLogger("fulcrum.pipeline")

NO_DEPLOYMENT = "-"
_HEALTH_REASONS = frozenset({"unreachable", "timeout", "stream_closed"})


@dataclass(slots=True)
class Attempt:
    """One upstream try and how it ended."""

    deployment: str
    outcome: str  # "ok" or the failure reason


@dataclass(slots=True)
class RequestContext:
    """What the pipeline knows about one request as it moves through the stages."""

    request_id: str
    started: float
    principal: Principal | None = None
    request: InferenceRequest | None = None
    reservation: Reservation | None = None
    attempts: list[Attempt] = field(default_factory=list)
    trying: str | None = None  # the deployment being called right now

    @property
    def deployment(self) -> str:
        """The deployment that served (or is being tried, or last failed) for this request."""
        if self.trying is not None:
            return self.trying
        return self.attempts[-1].deployment if self.attempts else NO_DEPLOYMENT

    @property
    def fallback_reasons(self) -> list[str]:
        return [f"{a.deployment}:{a.outcome}" for a in self.attempts if a.outcome != "ok"]


@dataclass(slots=True)
class Deployed:
    """A deployment's client and the facts accounting needs about it."""

    provider: Provider
    tags: DeploymentTags

    def cost(self, usage: Usage | None) -> float:
        if usage is None:
            return 0.0
        return (
            usage.input_tokens * self.tags.cost_per_1k_input
            + usage.output_tokens * self.tags.cost_per_1k_output
        ) / 1000.0


class Pipeline:
    """Runs the stages for one request; built once at start-up."""

    def __init__(
        self,
        authenticator: Authenticator,
        planner: Planner,
        deployments: Mapping[str, Deployed],
        health: HealthRegistry,
        metrics: GatewayMetrics,
        admission: Admission | None = None,
        cache: PromptCache | None = None,
        max_attempts: int = 3,
    ) -> None:
        self.authenticator = authenticator
        self.planner = planner
        self.deployments = dict(deployments)
        self.health = health
        self.metrics = metrics
        self.admission = admission
        self.cache = cache
        self.max_attempts = max_attempts

    def authenticate(self, ctx: RequestContext, headers: Mapping[str, str]) -> None:
        ctx.principal = self.authenticator.authenticate(headers)

    async def admit(self, ctx: RequestContext, request: InferenceRequest) -> list[str]:
        """Check the model, admit under limits, and return the plan (deployments to try)."""
        assert ctx.principal is not None
        ctx.request = request
        plan = self.planner.plan(ctx.principal, request)
        if self.admission is not None:
            ctx.reservation = await self.admission.admit(ctx.principal, request)
        return plan

    async def complete(self, ctx: RequestContext, plan: list[str]) -> Completion:
        """Call deployments in plan order until one answers (non-streaming)."""
        assert ctx.request is not None and ctx.principal is not None
        if self.cache is not None:
            cached = await self.cache.lookup(ctx.principal, ctx.request)
            if cached is not None:
                return cached
        last_error: UpstreamError | None = None
        for name in plan[: self.max_attempts]:
            ctx.trying = name
            try:
                completion = await self.deployments[name].provider.complete(
                    ctx.request, ctx.request_id
                )
            except UpstreamError as exc:
                self._failed(ctx, name, exc)
                if not exc.retryable:
                    raise
                last_error = exc
                continue
            self._succeeded(ctx, name)
            if self.cache is not None:
                await self.cache.store(ctx.principal, ctx.request, completion)
            return completion
        assert last_error is not None
        raise last_error

    async def open_stream(self, ctx: RequestContext, plan: list[str]) -> CompletionStream:
        """Open a stream on the first deployment that sends its first event."""
        assert ctx.request is not None
        last_error: UpstreamError | None = None
        for name in plan[: self.max_attempts]:
            ctx.trying = name
            try:
                stream = await self.deployments[name].provider.open_stream(
                    ctx.request, ctx.request_id
                )
            except UpstreamError as exc:
                self._failed(ctx, name, exc)
                if not exc.retryable:
                    raise
                last_error = exc
                continue
            self._succeeded(ctx, name)
            return stream
        assert last_error is not None
        raise last_error

    def _failed(self, ctx: RequestContext, name: str, exc: UpstreamError) -> None:
        ctx.trying = None
        ctx.attempts.append(Attempt(name, exc.reason))
        self.metrics.attempts.labels(name, exc.reason).inc()
        if exc.reason in _HEALTH_REASONS:
            self.health.mark(name, False, passive=True)
        log.warning("request %s: %s failed: %s", ctx.request_id, name, exc.message)

    def _succeeded(self, ctx: RequestContext, name: str) -> None:
        ctx.trying = None
        ctx.attempts.append(Attempt(name, "ok"))
        self.metrics.attempts.labels(name, "ok").inc()
        self.health.mark(name, True)

    async def account(
        self,
        ctx: RequestContext,
        status: int,
        usage: Usage | None,
        ttft: float | None = None,
    ) -> None:
        """Record what the request cost and how it went; settle its reservation."""
        model = ctx.request.model if ctx.request is not None else NO_DEPLOYMENT
        deployment = ctx.deployment
        deployed = self.deployments.get(deployment)
        cost = deployed.cost(usage) if deployed is not None else 0.0
        self.metrics.record_request(
            model if self.planner.knows(model) else "unknown",
            deployment,
            status,
            time.monotonic() - ctx.started,
            ttft,
            usage,
            cost,
        )
        if ctx.reservation is not None:
            try:
                await ctx.reservation.settle(usage)
            except ApiError:
                log.exception("request %s: settling its reservation failed", ctx.request_id)
