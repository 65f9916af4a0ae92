"""Composition root: typed configuration in, a wired aiohttp application out.

The only place that knows which implementation stands behind each stage's interface.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from fulcrum.api.middleware import errors_and_ids
from fulcrum.api.routes import GatewayApi
from fulcrum.cache.prompt_cache import build_cache
from fulcrum.config import BedrockDeployment, GatewayConfig, OpenAIDeployment
from fulcrum.errors import ConfigError
from fulcrum.pipeline import Deployed, Pipeline
from fulcrum.providers.base import Provider
from fulcrum.providers.bedrock.provider import BedrockProvider
from fulcrum.providers.bedrock.transport import SessionPool
from fulcrum.providers.openai_compat import OpenAICompatProvider
from fulcrum.routing.breaker import BreakerSettings, CircuitBreaker
from fulcrum.routing.health import ActiveHealthChecker, HealthRegistry, Probe
from fulcrum.routing.load import Hysteresis, LoadTracker
from fulcrum.routing.planner import DeploymentFacts, Planner
from fulcrum.routing.policy import Boundary
from fulcrum.routing.probe import VllmProbe
from fulcrum.routing.provisioned import ProvisionedCapacity
from fulcrum.routing.runtime import RoutingRuntime
from fulcrum.store import Store, StoreError, create_store
from fulcrum.telemetry.ledger.writer import LedgerWriter
from fulcrum.telemetry.metrics import GatewayMetrics
from fulcrum.telemetry.tracing import build_tracer
from fulcrum.tenancy import Tenancy, build_tenancy

if TYPE_CHECKING:
    from fulcrum.telemetry.audit import AuditLog

log = logging.getLogger("fulcrum.app")
pipeline_key = web.AppKey("pipeline", Pipeline)


def build_provider(
    name: str, deployment: OpenAIDeployment | BedrockDeployment, bedrock_pool: SessionPool
) -> Provider:
    """One client per deployment, by its provider kind."""
    if isinstance(deployment, BedrockDeployment):
        return BedrockProvider(name, deployment, bedrock_pool)
    return OpenAICompatProvider(name, deployment)


@dataclass
class Gateway:
    """The pipeline and everything with a lifecycle behind it, started and stopped in order."""

    pipeline: Pipeline
    checker: ActiveHealthChecker
    bedrock_pool: SessionPool
    tenancy: Tenancy
    store: Store | None = None
    ledger: LedgerWriter | None = None

    async def start(self) -> None:
        pipeline = self.pipeline
        if pipeline.audit is not None:
            recovered = await pipeline.audit.start()
            if recovered:
                log.info("audit: recovered %d spool segment(s) to ship", len(recovered))
        if self.store is not None:
            try:
                await self.store.migrate()
            except StoreError as exc:
                raise ConfigError(f"store: {exc}") from None
        await self.tenancy.start()
        if self.ledger is not None:
            self.ledger.start()
        self.checker.start()

    async def stop(self) -> None:
        pipeline = self.pipeline
        await self.checker.stop()
        for deployed in pipeline.deployments.values():
            await deployed.provider.close()
        await self.bedrock_pool.close()
        await pipeline.drain()
        if pipeline.cache is not None:
            await pipeline.cache.aclose()
        await self.tenancy.stop()
        if self.ledger is not None:
            await self.ledger.stop()  # writes what is pending, before the store closes
        if self.store is not None:
            await self.store.close()
        if pipeline.audit is not None:
            await pipeline.audit.stop()
        await pipeline.tracer.shutdown()


def build_gateway(config: GatewayConfig) -> Gateway:
    """Every stage from the configuration; nothing connects or starts until ``start``."""
    metrics = GatewayMetrics()
    needs_store = config.auth.enabled or config.ledger.enabled
    store = create_store(config.store.url) if needs_store else None
    tenancy = build_tenancy(config, metrics, store)
    ledger = (
        LedgerWriter(
            store,
            flush_interval=config.ledger.flush_interval,
            max_pending=config.ledger.max_pending,
            metrics=metrics,
        )
        if store is not None and config.ledger.enabled
        else None
    )
    health = HealthRegistry(
        config.deployments,
        listener=metrics.set_health,
        cooldown=config.routing.unhealthy_cooldown,
    )
    bedrock_pool = SessionPool()
    deployments = {
        name: Deployed(
            provider=build_provider(name, spec, bedrock_pool),
            tags=spec.tags,
            kind=spec.provider,
            regions=spec.regions,
            model=spec.model,
            address=upstream_host(spec),
        )
        for name, spec in config.deployments.items()
    }
    audit = build_audit(config, metrics)
    runtime = build_runtime(config, metrics)
    hysteresis = Hysteresis(
        recover_after=config.routing.recover_after, min_hold=config.routing.min_hold
    )
    probes: dict[str, tuple[Probe, float]] = {}
    for name, spec in config.deployments.items():
        provider = deployments[name].provider
        if isinstance(spec, OpenAIDeployment) and isinstance(provider, OpenAICompatProvider):
            check = spec.health_check
            if check.enabled:
                metrics_url = spec.root + check.metrics_path if check.metrics_path else None
                assert runtime.load is not None
                probe = VllmProbe(
                    name,
                    provider.check_health,
                    provider.session,
                    metrics_url,
                    check.timeout,
                    check.max_waiting,
                    runtime.load,
                    hysteresis,
                    metrics,
                )
                probes[name] = (probe, check.interval)
                continue
        health.mark(name, True)  # no active probe: passive health from traffic only
    checker = ActiveHealthChecker(health, probes)
    planner = Planner(
        config.models,
        {name: deployment_facts(spec) for name, spec in config.deployments.items()},
        config.tenants,
        health,
        breakers=runtime.breakers,
        load=runtime.load,
    )
    pipeline = Pipeline(
        authenticator=tenancy.authenticator,
        admission=tenancy.limiter,
        default_max_tokens=config.limits.default_max_tokens,
        audit=audit,
        cache=build_cache(config.cache, config.redis, metrics),
        tracer=build_tracer(config.tracing),
        planner=planner,
        deployments=deployments,
        health=health,
        metrics=metrics,
        max_attempts=config.routing.max_attempts,
        deadline=config.routing.deadline,
        runtime=runtime,
        ledger=ledger,
    )
    return Gateway(pipeline, checker, bedrock_pool, tenancy, store, ledger)


def upstream_host(spec: OpenAIDeployment | BedrockDeployment) -> str | None:
    """The host a deployment's requests go to (the ``server.address`` of its trace spans)."""
    return urlsplit(spec.base if isinstance(spec, OpenAIDeployment) else spec.endpoint).hostname


def build_audit(config: GatewayConfig, metrics: GatewayMetrics) -> AuditLog | None:
    """The durable audit log when enabled, its state exported as ``fulcrum_audit_*``."""
    if not config.audit.enabled:
        return None
    from fulcrum.telemetry.audit import AuditLog
    from fulcrum.telemetry.audit_metrics import AuditCollector

    audit = AuditLog.from_config(config.audit)
    metrics.registry.register(AuditCollector(audit.status))
    return audit


def deployment_facts(spec: OpenAIDeployment | BedrockDeployment) -> DeploymentFacts:
    """The routing-relevant facts of a deployment: its boundary, prices, saturation bound."""
    max_waiting = spec.health_check.max_waiting if isinstance(spec, OpenAIDeployment) else None
    return DeploymentFacts(
        boundary=Boundary(regions=spec.regions, in_vpc=spec.tags.inside_vpc),
        cost_per_1k_input=spec.tags.cost_per_1k_input,
        cost_per_1k_output=spec.tags.cost_per_1k_output,
        max_waiting=max_waiting,
    )


def build_runtime(config: GatewayConfig, metrics: GatewayMetrics) -> RoutingRuntime:
    """Breakers for every deployment, load tracking, and PT capacity where configured."""
    settings = BreakerSettings(**config.routing.breaker.model_dump())

    def breaker(name: str) -> CircuitBreaker:
        metrics.set_circuit(name, "closed")
        return CircuitBreaker(settings, on_change=lambda state: metrics.set_circuit(name, state))

    capacities = {
        name: float(spec.provisioned_tpm)
        for name, spec in config.deployments.items()
        if isinstance(spec, BedrockDeployment) and spec.provisioned_tpm is not None
    }
    return RoutingRuntime(
        breakers={name: breaker(name) for name in config.deployments},
        load=LoadTracker(),
        provisioned=(
            ProvisionedCapacity(capacities, headroom=config.routing.provisioned_headroom)
            if capacities
            else None
        ),
        max_output={
            name: spec.max_output_tokens
            for name, spec in config.deployments.items()
            if isinstance(spec, BedrockDeployment) and name in capacities
        },
    )


def build_app(config: GatewayConfig) -> web.Application:
    """The gateway application; start-up and shutdown hooks own the background work."""
    gateway = build_gateway(config)
    api = GatewayApi(gateway.pipeline, config.server.max_body_bytes)
    app = web.Application(
        middlewares=[errors_and_ids],
        client_max_size=config.server.max_body_bytes,
    )
    app[pipeline_key] = gateway.pipeline
    app.add_routes(api.routes())

    async def start_background(_: web.Application) -> None:
        await gateway.start()

    async def stop_background(_: web.Application) -> None:
        await gateway.stop()

    app.on_startup.append(start_background)
    app.on_cleanup.append(stop_background)
    return app
