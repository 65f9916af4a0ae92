"""The path of one request: authenticate → admit → cache → plan → call → account.

Each stage is an object handed in by the composition root (``app.py``); optional stages that
are switched off are ``None`` and cost nothing. The pipeline knows no HTTP: the API layer
feeds it validated requests and writes what it returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from fulcrum.accounting import audit_record
from fulcrum.api.errors import ApiError, UpstreamError
from fulcrum.auth.base import Authenticator
from fulcrum.auth.principal import Principal
from fulcrum.config import DeploymentTags, Workload
from fulcrum.limits.admission import Admission, Demand, Reservation
from fulcrum.providers.base import Completion, CompletionStream, Provider, Usage
from fulcrum.providers.estimate import estimate_prompt_tokens
from fulcrum.routing.health import HealthRegistry
from fulcrum.routing.planner import DEFAULT_OUTPUT_ESTIMATE, Plan, Planner
from fulcrum.routing.runtime import RoutingRuntime
from fulcrum.schema.openai import Endpoint, InferenceRequest
from fulcrum.telemetry.ledger.record import UsageEvent, backend_of
from fulcrum.telemetry.metrics import GatewayMetrics
from fulcrum.telemetry.tracing import NO_SPAN, NOOP_TRACER, RequestTracer, SpanHandle

log = logging.getLogger("fulcrum.pipeline")
T = TypeVar("T")

if TYPE_CHECKING:
    from fulcrum.cache.assemble import StreamRecorder
    from fulcrum.cache.prompt_cache import CachedAnswer, CacheTicket, PromptCacheStage
    from fulcrum.telemetry.audit import AuditLog
    from fulcrum.telemetry.ledger.writer import LedgerWriter

NO_DEPLOYMENT = "-"
_HEALTH_REASONS = frozenset({"unreachable", "timeout", "stream_closed"})
# Failures that say something about the deployment (not about the request) trip its breaker.
_CLIENT_FAULTS = frozenset({400, 404, 413, 422})
# The scope a credential needs for each endpoint (a credential without scopes may call all).
ENDPOINT_SCOPES = {
    Endpoint.CHAT: "chat",
    Endpoint.COMPLETIONS: "completions",
    Endpoint.EMBEDDINGS: "embeddings",
}


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
    skipped: list[Attempt] = field(default_factory=list)  # passed over without a call
    trying: str | None = None  # the deployment being called right now
    plan: Plan | None = None
    estimated_prompt: int = 0
    requested_output: int | None = None
    estimated_tokens: int = 0  # reserved on the PT deployment being called
    in_flight_on: str | None = None  # load tracking: released when the request ends
    provisioned_on: str | None = None  # PT capacity reserved here, settled when it ends
    cache_ticket: CacheTicket | None = None  # the cache stage's decision (None: no cache)
    cache_recorder: StreamRecorder | None = None  # records a streamed answer to store it
    saved_usd: float = 0.0  # what a cache hit avoided paying upstream
    span: SpanHandle = NO_SPAN  # the request's trace span (a shared no-op when tracing is off)
    audit_failed: bool = False  # the audit record could not be made durable

    @property
    def deployment(self) -> str:
        """The deployment that served (or is being tried, or last failed) for this request."""
        if self.trying is not None:
            return self.trying
        return self.attempts[-1].deployment if self.attempts else NO_DEPLOYMENT

    @property
    def fallback_reasons(self) -> list[str]:
        passed = [*self.skipped, *self.attempts]
        return [f"{a.deployment}:{a.outcome}" for a in passed if a.outcome != "ok"]

    @property
    def fell_back(self) -> bool:
        return len(self.attempts) > 1 or bool(self.skipped)

    @property
    def cache_result(self) -> str | None:
        """``hit``, ``miss`` or ``bypass`` (the ``x-fulcrum-cache`` header); None: no cache."""
        return self.cache_ticket.status if self.cache_ticket is not None else None


@dataclass(slots=True)
class Deployed:
    """A deployment's client and the facts accounting needs about it."""

    provider: Provider
    tags: DeploymentTags
    kind: str = "openai"  # the provider kind: openai (vLLM, compatible servers) or bedrock
    regions: tuple[str, ...] = ()  # where it may process data (for the audit record)
    model: str | None = None  # the upstream model id (for traces)
    address: str | None = None  # the upstream host (for traces)

    @property
    def dearest_per_1k(self) -> float:
        return max(self.tags.cost_per_1k_input, self.tags.cost_per_1k_output)

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
        cache: PromptCacheStage | None = None,
        max_attempts: int = 3,
        deadline: float = 300.0,
        runtime: RoutingRuntime | None = None,
        default_max_tokens: int = 1024,
        audit: AuditLog | None = None,
        tracer: RequestTracer = NOOP_TRACER,
        ledger: LedgerWriter | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.planner = planner
        self.deployments = dict(deployments)
        self.health = health
        self.metrics = metrics
        self.admission = admission
        self.cache = cache
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.runtime = runtime or RoutingRuntime()
        self.default_max_tokens = default_max_tokens
        self.audit = audit
        self.tracer = tracer
        self.ledger = ledger
        self._background: set[asyncio.Task[object]] = set()  # cache stores, off the response

    async def authenticate(self, ctx: RequestContext, headers: Mapping[str, str]) -> None:
        try:
            ctx.principal = await self.authenticator.authenticate(headers)
        except ApiError as exc:
            self.metrics.auth_failures.labels(str(exc.code)).inc()
            raise

    async def admit(
        self,
        ctx: RequestContext,
        request: InferenceRequest,
        workload: Workload | None = None,
        cache_directive: str | None = None,
    ) -> Plan:
        """Check scope and model, plan, and admit under limits; returns the deployments to try."""
        principal = ctx.principal
        assert principal is not None
        ctx.request = request
        self.tracer.describe_request(ctx.span, request)
        authorize(principal, request)
        if self.cache is not None:
            ctx.cache_ticket = self.cache.decide(principal, request, cache_directive)
        plan = self.planner.plan(principal, request, workload)
        ctx.plan = plan
        limited = self.admission is not None and principal.policy.limits.any
        if self.runtime.provisioned is not None or limited:
            output = request.body.get("max_completion_tokens") or request.body.get("max_tokens")
            ctx.estimated_prompt = estimate_prompt_tokens(request.body)
            ctx.requested_output = output if isinstance(output, int) else None
        if limited:
            assert self.admission is not None
            tokens = ctx.estimated_prompt + (ctx.requested_output or self.default_max_tokens)
            if request.endpoint is Endpoint.EMBEDDINGS:
                tokens = ctx.estimated_prompt
            price = max(self.deployments[name].dearest_per_1k for name in plan.deployments)
            demand = Demand(model=request.model, tokens=tokens, cost_usd=tokens * price / 1000)
            ctx.reservation = await self.admission.admit(principal, demand)
        self.metrics.count_decision(request.model, plan.deployments[0], plan.workload)
        return plan

    def _may_call(self, ctx: RequestContext, name: str) -> bool:
        """Claim a breaker probe and PT capacity for one call; False passes it over."""
        if len(ctx.attempts) >= self.max_attempts:
            return False
        runtime = self.runtime
        breaker = runtime.breakers.get(name)
        if breaker is not None and not breaker.allow():
            ctx.skipped.append(Attempt(name, "circuit_open"))
            self.tracer.skip(ctx.span, name, "circuit_open")
            return False
        if runtime.provisioned is not None and name in runtime.provisioned:
            # Bedrock reserves input + the maximum output against PT capacity; so must we,
            # or it throttles before the gateway spills.
            output = ctx.requested_output or runtime.max_output.get(name, DEFAULT_OUTPUT_ESTIMATE)
            ctx.estimated_tokens = ctx.estimated_prompt + output
            if not runtime.provisioned.reserve(name, ctx.estimated_tokens):
                ctx.skipped.append(Attempt(name, "provisioned_full"))
                self.tracer.skip(ctx.span, name, "provisioned_full")
                self.metrics.count_attempt(name, "provisioned_full")
                if breaker is not None:
                    breaker.release()
                return False
            ctx.provisioned_on = name
        if runtime.load is not None:
            runtime.load.begin(name)
            ctx.in_flight_on = name
        return True

    def _out_of_time(self, ctx: RequestContext) -> bool:
        return time.monotonic() - ctx.started > self.deadline

    async def complete(self, ctx: RequestContext, plan: Plan) -> Completion:
        """Serve from the cache, or call deployments in plan order until one answers."""
        assert ctx.request is not None
        cached = await self._cached(ctx)
        if cached is not None:
            return cached.completion()
        request = ctx.request
        return await self._first_success(
            ctx, plan, lambda provider: provider.complete(request, ctx.request_id)
        )

    async def open_stream(self, ctx: RequestContext, plan: Plan) -> CompletionStream:
        """Replay from the cache, or open a stream on the first deployment that answers."""
        assert ctx.request is not None
        request = ctx.request
        cached = await self._cached(ctx)
        if cached is not None:
            return cached.stream(request.client_wants_usage)
        stream = await self._first_success(
            ctx, plan, lambda provider: provider.open_stream(request, ctx.request_id)
        )
        if self.cache is not None and ctx.cache_ticket is not None:
            ctx.cache_recorder = self.cache.recorder(ctx.cache_ticket)
        return stream

    async def _cached(self, ctx: RequestContext) -> CachedAnswer | None:
        """The cached answer for this request (its saving counted), or None."""
        if self.cache is None or ctx.cache_ticket is None:
            return None
        answer = await self.cache.lookup(ctx.cache_ticket)
        if answer is not None:
            producer = self.deployments.get(answer.deployment)
            ctx.saved_usd = producer.cost(answer.usage) if producer is not None else 0.0
            self.cache.record_saved(ctx.saved_usd)
        return answer

    def _store_in_cache(
        self, ctx: RequestContext, status: int, usage: Usage | None, body: bytes | None
    ) -> None:
        """Keep a fresh answer for later requests, in the background (off the response)."""
        cache, ticket = self.cache, ctx.cache_ticket
        if cache is None or ticket is None or status != 200 or ticket.status == "hit":
            return
        if ctx.cache_recorder is not None:
            store = cache.store_stream(ticket, ctx.cache_recorder, usage, ctx.deployment)
        elif body is not None:
            store = cache.store(ticket, body, usage, ctx.deployment)
        else:
            return
        task: asyncio.Task[object] = asyncio.ensure_future(store)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background cache stores (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _first_success(
        self, ctx: RequestContext, plan: Plan, call: Callable[[Provider], Awaitable[T]]
    ) -> T:
        """The call stage: try the plan in order, failing over on retryable errors only."""
        last_error: UpstreamError | None = None
        for name in plan.deployments:
            if self._out_of_time(ctx) or not self._may_call(ctx, name):
                if len(ctx.attempts) >= self.max_attempts or self._out_of_time(ctx):
                    break
                continue
            ctx.trying = name
            deployed = self.deployments[name]
            attempt = self.tracer.start_attempt(
                ctx.span, name, deployed.kind, deployed.model, deployed.address
            )
            try:
                result = await call(deployed.provider)
            except asyncio.CancelledError:
                self.tracer.end_attempt(attempt, "cancelled")
                breaker = self.runtime.breakers.get(name)
                if breaker is not None:
                    breaker.release()  # the client left: no verdict, free a half-open slot
                raise
            except UpstreamError as exc:
                self.tracer.end_attempt(attempt, exc.reason, exc.status)
                self._failed(ctx, name, exc)
                if not exc.retryable:
                    raise
                last_error = exc
                continue
            self.tracer.end_attempt(attempt, "ok")
            self._succeeded(ctx, name)
            return result
        raise last_error or self._nothing_tried(ctx)

    def _nothing_tried(self, ctx: RequestContext) -> ApiError:
        if self._out_of_time(ctx):
            return UpstreamError(
                504,
                "The request ran out of time before a deployment answered.",
                retryable=False,
                reason="deadline",
                code="upstream_timeout",
            )
        reasons = ", ".join(ctx.fallback_reasons) or "none eligible"
        return ApiError(
            503,
            f"No deployment could take the request now ({reasons}); retry shortly.",
            type="upstream_error",
            code="no_available_deployment",
            headers={"Retry-After": "1"},
        )

    def _failed(self, ctx: RequestContext, name: str, exc: UpstreamError) -> None:
        ctx.trying = None
        ctx.attempts.append(Attempt(name, exc.reason))
        self.metrics.count_attempt(name, exc.reason)
        if exc.reason in _HEALTH_REASONS:
            self.health.mark(name, False, passive=True)
        breaker = self.runtime.breakers.get(name)
        if breaker is not None:
            if exc.retryable or exc.status not in _CLIENT_FAULTS:
                breaker.record_failure()
                if exc.status == 429 and exc.retry_after:
                    breaker.cool_down(exc.retry_after)
            else:
                breaker.release()  # the request's fault, not the deployment's
        self._release(ctx, None)
        log.warning("request %s: %s failed: %s", ctx.request_id, name, exc.message)

    def _succeeded(self, ctx: RequestContext, name: str) -> None:
        ctx.trying = None
        ctx.attempts.append(Attempt(name, "ok"))
        self.metrics.count_attempt(name, "ok")
        self.health.mark(name, True, passive=True)
        breaker = self.runtime.breakers.get(name)
        if breaker is not None:
            breaker.record_success()

    def _release(self, ctx: RequestContext, usage: Usage | None) -> None:
        """End load tracking and settle PT capacity for the current call."""
        runtime = self.runtime
        if ctx.in_flight_on is not None and runtime.load is not None:
            runtime.load.end(ctx.in_flight_on)
        ctx.in_flight_on = None
        if ctx.provisioned_on is not None and runtime.provisioned is not None:
            actual = usage.total_tokens if usage is not None else 0
            runtime.provisioned.settle(ctx.provisioned_on, ctx.estimated_tokens, actual)
            self.metrics.provisioned_utilization.labels(ctx.provisioned_on).set(
                runtime.provisioned.utilization(ctx.provisioned_on)
            )
        ctx.provisioned_on = None

    async def account(
        self,
        ctx: RequestContext,
        status: int,
        usage: Usage | None,
        ttft: float | None = None,
        response_body: bytes | None = None,
    ) -> None:
        """Record what the request cost and how it went; settle its reservation; audit it.

        The audit record is durable when this returns (the response is not complete yet);
        if it could not be written, ``ctx.audit_failed`` says so and the caller decides.
        """
        self._release(ctx, usage)
        latency = time.monotonic() - ctx.started
        model = ctx.request.model if ctx.request is not None else NO_DEPLOYMENT
        deployment = ctx.deployment
        deployed = self.deployments.get(deployment)
        cost = deployed.cost(usage) if deployed is not None else 0.0
        model = model if self.planner.knows(model) else "unknown"  # clients name models
        self.metrics.record_request(model, deployment, status, latency, ttft, usage, cost)
        if self.ledger is not None:
            self.ledger.record(usage_event(ctx, model, status, usage, cost, latency, deployed))
        if ctx.reservation is not None:
            tokens = usage.total_tokens if usage is not None else 0
            try:
                await ctx.reservation.settle(tokens, cost)
            except Exception:  # a limiter fault must not fail a request that was served
                log.exception("request %s: settling its reservation failed", ctx.request_id)
        self._store_in_cache(ctx, status, usage, response_body)
        if self.audit is not None:
            record = audit_record(
                ctx,
                status=status,
                usage=usage,
                cost=cost,
                finished_at=time.time(),
                latency=latency,
                ttft=ttft,
                provider=deployed.kind if deployed is not None else None,
                regions=deployed.regions if deployed is not None else (),
                redactor=self.audit.redactor,
                response_body=response_body,
            )
            try:
                await self.audit.record(record)
            except Exception:
                ctx.audit_failed = True
                self.metrics.audit_write_errors.inc()
                log.exception("request %s: the audit record could not be written", ctx.request_id)
        self.tracer.end_request(
            ctx.span,
            status=status,
            usage=usage,
            cost=cost,
            deployment=deployment,
            tenant=ctx.principal.tenant if ctx.principal is not None else None,
            ttft=ttft,
            response_model=deployed.model if deployed is not None else None,
            attempts=len(ctx.attempts),
            fell_back=ctx.fell_back,
            cache=ctx.cache_result,
        )


def authorize(principal: Principal, request: InferenceRequest) -> None:
    """403 unless the credential's scopes and the tenant's model allowlist permit the call."""
    scope = ENDPOINT_SCOPES[request.endpoint]
    if principal.scopes and scope not in principal.scopes:
        raise ApiError(
            403,
            f"This credential lacks the scope `{scope}` needed for /v1/{request.endpoint.value}.",
            type="permission_error",
            code="insufficient_scope",
        )
    if not principal.policy.allows_model(request.model):
        raise ApiError(
            403,
            f"Tenant `{principal.tenant}` may not use the model `{request.model}`.",
            param="model",
            type="permission_error",
            code="model_not_allowed",
        )


def usage_event(
    ctx: RequestContext,
    model: str,
    status: int,
    usage: Usage | None,
    cost: float,
    latency: float,
    deployed: Deployed | None,
) -> UsageEvent:
    """The ledger's view of one finished request (a cache hit: no tokens, cost 0, saving)."""
    return UsageEvent(
        time=time.time(),
        tenant=ctx.principal.tenant if ctx.principal is not None else NO_DEPLOYMENT,
        model=model,
        deployment=ctx.deployment,
        backend=backend_of(deployed.tags.self_hosted if deployed is not None else None),
        workload=ctx.plan.workload if ctx.plan is not None else NO_DEPLOYMENT,
        input_tokens=usage.input_tokens if usage is not None else 0,
        output_tokens=usage.output_tokens if usage is not None else 0,
        cached_tokens=usage.cached_tokens if usage is not None else 0,
        cost_usd=cost,
        error=status >= 400,
        cache_hit=ctx.cache_result == "hit",
        saved_usd=ctx.saved_usd,
        latency_seconds=latency,
    )
