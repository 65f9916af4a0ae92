"""Composition root: typed configuration in, a wired aiohttp application out.

The only place that knows which implementation stands behind each stage's interface.
"""

from __future__ import annotations

from aiohttp import web

from fulcrum.api.middleware import errors_and_ids
from fulcrum.api.routes import GatewayApi
from fulcrum.auth.static_keys import build_authenticator
from fulcrum.config import BedrockDeployment, GatewayConfig, OpenAIDeployment
from fulcrum.pipeline import Deployed, Pipeline
from fulcrum.providers.base import Provider
from fulcrum.providers.bedrock.provider import BedrockProvider
from fulcrum.providers.bedrock.transport import SessionPool
from fulcrum.providers.openai_compat import OpenAICompatProvider
from fulcrum.routing.health import ActiveHealthChecker, HealthRegistry
from fulcrum.routing.planner import Planner
from fulcrum.telemetry.metrics import GatewayMetrics

pipeline_key = web.AppKey("pipeline", Pipeline)


def build_provider(
    name: str, deployment: OpenAIDeployment | BedrockDeployment, bedrock_pool: SessionPool
) -> Provider:
    """One client per deployment, by its provider kind."""
    if isinstance(deployment, BedrockDeployment):
        return BedrockProvider(name, deployment, bedrock_pool)
    return OpenAICompatProvider(name, deployment)


def build_pipeline(config: GatewayConfig) -> tuple[Pipeline, ActiveHealthChecker, SessionPool]:
    metrics = GatewayMetrics()
    health = HealthRegistry(
        config.deployments,
        listener=metrics.set_health,
        cooldown=config.routing.unhealthy_cooldown,
    )
    bedrock_pool = SessionPool()
    deployments = {
        name: Deployed(provider=build_provider(name, spec, bedrock_pool), tags=spec.tags)
        for name, spec in config.deployments.items()
    }
    probes = {}
    for name, spec in config.deployments.items():
        if isinstance(spec, OpenAIDeployment) and spec.health_check.enabled:
            probes[name] = (deployments[name].provider.check_health, spec.health_check.interval)
        else:
            health.mark(name, True)  # no active probe: passive health from traffic only
    checker = ActiveHealthChecker(health, probes)
    pipeline = Pipeline(
        authenticator=build_authenticator(config.auth),
        planner=Planner(config.models, health),
        deployments=deployments,
        health=health,
        metrics=metrics,
        max_attempts=config.routing.max_attempts,
    )
    return pipeline, checker, bedrock_pool


def build_app(config: GatewayConfig) -> web.Application:
    """The gateway application; start-up and shutdown hooks own the background work."""
    pipeline, checker, bedrock_pool = build_pipeline(config)
    api = GatewayApi(pipeline, config.server.max_body_bytes)
    app = web.Application(
        middlewares=[errors_and_ids],
        client_max_size=config.server.max_body_bytes,
    )
    app[pipeline_key] = pipeline
    app.add_routes(api.routes())

    async def start_background(_: web.Application) -> None:
        checker.start()

    async def stop_background(_: web.Application) -> None:
        await checker.stop()
        for deployed in pipeline.deployments.values():
            await deployed.provider.close()
        await bedrock_pool.close()

    app.on_startup.append(start_background)
    app.on_cleanup.append(stop_background)
    return app
