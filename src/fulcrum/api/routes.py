"""OpenAI-compatible routes, plus health, readiness and metrics.

Handlers translate HTTP to pipeline calls and back; they hold no policy of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson
from aiohttp import web

from fulcrum.api.errors import (
    ApiError,
    UpstreamError,
    audit_unavailable,
    internal_error,
    model_not_found,
)
from fulcrum.api.middleware import (
    ATTEMPTS,
    DEPLOYMENT,
    FALLBACK,
    REQUEST_ID,
    error_response,
    request_id_key,
)
from fulcrum.config import TenantConfig
from fulcrum.pipeline import Pipeline, RequestContext
from fulcrum.providers.base import CompletionStream, Usage
from fulcrum.routing.planner import parse_workload
from fulcrum.schema.openai import Endpoint, model_card, models_list, parse_request
from fulcrum.telemetry.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

log = logging.getLogger("fulcrum.api")

_SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
WORKLOAD = "x-fulcrum-workload"
CACHE = "x-fulcrum-cache"
CLIENT_CLOSED = 499  # nginx's convention for "client went away"


class GatewayApi:
    """The HTTP surface of one gateway."""

    def __init__(self, pipeline: Pipeline, max_body_bytes: int) -> None:
        self.pipeline = pipeline
        self.max_body_bytes = max_body_bytes
        self._created = int(time.time())
        self._models_body = orjson.dumps(models_list(pipeline.planner.aliases, self._created))

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self.chat_completions),
            web.post("/v1/completions", self.completions),
            web.post("/v1/embeddings", self.embeddings),
            web.get("/v1/models", self.list_models),
            web.get("/v1/models/{model:.+}", self.retrieve_model),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
        ]

    # -- inference ---------------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._inference(request, Endpoint.CHAT)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._inference(request, Endpoint.COMPLETIONS)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._inference(request, Endpoint.EMBEDDINGS)

    async def _inference(self, http: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        ctx = RequestContext(request_id=http[request_id_key], started=time.monotonic())
        pipeline = self.pipeline
        ctx.span = pipeline.tracer.start_request(ctx.request_id, endpoint, http.headers)
        metrics = pipeline.metrics
        metrics.in_flight.inc()
        try:
            try:
                await pipeline.authenticate(ctx, http.headers)
                raw = await self._read_body(http)
                inference = parse_request(endpoint, raw)
                workload = parse_workload(http.headers.get(WORKLOAD))
                plan = await pipeline.admit(ctx, inference, workload, http.headers.get(CACHE))
                if inference.stream:
                    stream = await pipeline.open_stream(ctx, plan)
                else:
                    completion = await pipeline.complete(ctx, plan)
            except ApiError as exc:
                await pipeline.account(ctx, exc.status, None)
                return self._error(exc, ctx)
            except asyncio.CancelledError:
                await pipeline.account(ctx, CLIENT_CLOSED, None)  # client left while waiting
                raise
            except Exception:
                log.exception("request %s failed unexpectedly", ctx.request_id)
                await pipeline.account(ctx, 500, None)
                return self._error(internal_error(), ctx)
            if inference.stream:
                return await self._write_stream(http, ctx, stream)
            await pipeline.account(ctx, 200, completion.usage, response_body=completion.body)
            if ctx.audit_failed:  # nothing is acknowledged without its audit record
                return self._error(audit_unavailable(), ctx)
            return web.Response(
                body=completion.body,
                content_type="application/json",
                headers=self._served_headers(ctx),
            )
        finally:
            metrics.in_flight.dec()

    async def _read_body(self, http: web.Request) -> bytes:
        length = http.content_length
        if length is not None and length > self.max_body_bytes:
            raise ApiError(
                413,
                f"The request body is {length} bytes; the limit is {self.max_body_bytes}.",
                code="request_too_large",
            )
        try:
            return await http.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(
                413,
                f"The request body exceeds the limit of {self.max_body_bytes} bytes.",
                code="request_too_large",
            ) from None

    async def _write_stream(
        self, http: web.Request, ctx: RequestContext, stream: CompletionStream
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={**_SSE_HEADERS, **self._served_headers(ctx)})
        status = 200
        ttft: float | None = None
        try:
            await response.prepare(http)
            recorder = ctx.cache_recorder
            async for batch in stream:
                if ttft is None:
                    ttft = time.monotonic() - ctx.started
                await response.write(batch)
                if recorder is not None:
                    recorder.feed(batch)
        except UpstreamError as exc:
            # Too late to fail over: end the stream with an error event the SDKs understand.
            status = exc.status
            log.warning("request %s: stream broke: %s", ctx.request_id, exc.message)
            try:
                await response.write(exc.sse_event())
            except (ConnectionError, RuntimeError):
                status = CLIENT_CLOSED
        except (ConnectionError, RuntimeError):
            status = CLIENT_CLOSED  # the client went away; closing the stream aborts upstream
        except Exception:
            # A bug after the headers were sent: the HTTP framing must stay valid, so end the
            # stream with an error event rather than letting a 500 response be written.
            log.exception("request %s: stream failed unexpectedly", ctx.request_id)
            status = 500
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write(internal_error().sse_event())
        except asyncio.CancelledError:
            await self._finish_stream(ctx, stream, CLIENT_CLOSED, stream.usage, ttft)
            raise
        await self._finish_stream(ctx, stream, status, stream.usage, ttft)
        if status != CLIENT_CLOSED:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write_eof()
        return response

    async def _finish_stream(
        self,
        ctx: RequestContext,
        stream: CompletionStream,
        status: int,
        usage: Usage | None,
        ttft: float | None,
    ) -> None:
        await stream.aclose()
        await self.pipeline.account(ctx, status, usage, ttft)

    def _served_headers(self, ctx: RequestContext) -> dict[str, str]:
        headers = {
            REQUEST_ID: ctx.request_id,
            DEPLOYMENT: ctx.deployment,
            ATTEMPTS: str(len(ctx.attempts)),
        }
        if ctx.fell_back:
            headers[FALLBACK] = ",".join(ctx.fallback_reasons)
        if ctx.plan is not None:
            headers[WORKLOAD] = ctx.plan.workload
        if ctx.reservation is not None:
            headers.update(ctx.reservation.headers)
        if ctx.cache_ticket is not None:
            headers[CACHE] = ctx.cache_ticket.status
        return headers

    def _error(self, exc: ApiError, ctx: RequestContext) -> web.Response:
        response = error_response(exc, ctx.request_id, ctx.deployment)
        if ctx.attempts:
            response.headers[ATTEMPTS] = str(len(ctx.attempts))
            if ctx.fell_back:
                response.headers[FALLBACK] = ",".join(ctx.fallback_reasons)
        if isinstance(exc, UpstreamError) and exc.retry_after is not None:
            response.headers["Retry-After"] = str(int(exc.retry_after + 0.999))
        return response

    # -- models ------------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        policy = await self._models_caller(request)
        if policy.models is None:
            return web.Response(body=self._models_body, content_type="application/json")
        aliases = [alias for alias in self.pipeline.planner.aliases if policy.allows_model(alias)]
        return web.Response(
            body=orjson.dumps(models_list(aliases, self._created)),
            content_type="application/json",
        )

    async def retrieve_model(self, request: web.Request) -> web.Response:
        policy = await self._models_caller(request)
        alias = request.match_info["model"]
        if not self.pipeline.planner.knows(alias) or not policy.allows_model(alias):
            raise model_not_found(alias)
        return web.Response(
            body=orjson.dumps(model_card(alias, self._created)), content_type="application/json"
        )

    async def _models_caller(self, request: web.Request) -> TenantConfig:
        """Authenticate a models call; the tenant sees only the aliases it may use."""
        ctx = RequestContext(request_id=request[request_id_key], started=time.monotonic())
        await self.pipeline.authenticate(ctx, request.headers)
        assert ctx.principal is not None
        if ctx.principal.scopes and "models" not in ctx.principal.scopes:
            raise ApiError(
                403,
                "This credential lacks the scope `models` needed for /v1/models.",
                type="permission_error",
                code="insufficient_scope",
            )
        return ctx.principal.policy

    # -- operations --------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def readyz(self, request: web.Request) -> web.Response:
        health = self.pipeline.health
        ready = health.any_healthy()
        body = {"status": "ready" if ready else "not_ready", "deployments": health.snapshot()}
        return web.Response(
            status=200 if ready else 503, body=orjson.dumps(body), content_type="application/json"
        )

    async def metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.pipeline.metrics.render())
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response


__all__ = ["REQUEST_ID", "GatewayApi"]
