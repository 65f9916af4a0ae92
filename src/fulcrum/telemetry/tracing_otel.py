"""The OpenTelemetry-backed ``RequestTracer``; imported only when ``tracing.enabled``.

Each tracer owns its ``TracerProvider`` (never the process-global one), so several gateways or
tests can trace side by side. Spans are handed to a ``BatchSpanProcessor``, whose worker thread
exports them: ending a span never waits on the network. Parents are passed explicitly rather
than through the ambient context, so concurrent requests on one event loop cannot mix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from fulcrum.errors import ConfigError
from fulcrum.providers.base import Usage
from fulcrum.schema.openai import Endpoint, InferenceRequest
from fulcrum.telemetry.tracing import MISSING_EXTRA, NO_SPAN, SpanHandle, TracingConfig

# OpenTelemetry GenAI semantic conventions (semantic-conventions-genai, development status).
OPERATION: Final = "gen_ai.operation.name"
PROVIDER: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
MAX_TOKENS: Final = "gen_ai.request.max_tokens"
TEMPERATURE: Final = "gen_ai.request.temperature"
TOP_P: Final = "gen_ai.request.top_p"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
# General conventions.
SERVER_ADDRESS: Final = "server.address"
HTTP_STATUS: Final = "http.response.status_code"
ERROR_TYPE: Final = "error.type"
# Fulcrum's own.
REQUEST_ID: Final = "fulcrum.request_id"
STREAM: Final = "fulcrum.stream"
DEPLOYMENT: Final = "fulcrum.deployment"
OUTCOME: Final = "fulcrum.attempt.outcome"
ATTEMPTS: Final = "fulcrum.attempts"
FALLBACK: Final = "fulcrum.fallback"
CACHE: Final = "fulcrum.cache"
TENANT: Final = "fulcrum.tenant"
COST: Final = "fulcrum.cost_usd"
SKIPPED_EVENT: Final = "fulcrum.deployment_skipped"

OPERATIONS: Final = {
    Endpoint.CHAT: "chat",
    Endpoint.COMPLETIONS: "text_completion",
    Endpoint.EMBEDDINGS: "embeddings",
}
# Deployment kind → gen_ai.provider.name. An OpenAI-compatible server (vLLM) speaks the
# "openai" flavour; server.address and the model names tell which system actually answered.
PROVIDERS: Final = {"bedrock": "aws.bedrock", "openai": "openai"}
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_TRACE_HEADERS: Final = ("traceparent", "tracestate")


class _Span:
    """An SDK span plus the operation its children inherit (OTel spans are write-only)."""

    __slots__ = ("operation", "span")

    def __init__(self, span: Span, operation: str) -> None:
        self.span = span
        self.operation = operation

    def is_recording(self) -> bool:
        return self.span.is_recording()


class OtelTracer:
    """``RequestTracer`` on an OpenTelemetry SDK ``TracerProvider`` of its own."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("fulcrum")

    @classmethod
    def from_config(
        cls, config: TracingConfig, processor: SpanProcessor | None = None
    ) -> OtelTracer:
        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: config.service_name}),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        )
        if processor is None:
            exporter = _exporter(config)
            if exporter is not None:
                processor = BatchSpanProcessor(exporter)
        if processor is not None:
            provider.add_span_processor(processor)
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return True

    def start_request(
        self, request_id: str, endpoint: Endpoint, headers: Mapping[str, str]
    ) -> SpanHandle:
        carrier = {name: value for name in _TRACE_HEADERS if (value := headers.get(name))}
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        operation = OPERATIONS[endpoint]
        span = self._tracer.start_span(
            operation,
            context=parent or Context(),
            kind=SpanKind.SERVER,
            attributes={OPERATION: operation, REQUEST_ID: request_id},
        )
        return _Span(span, operation)

    def describe_request(self, span: SpanHandle, request: InferenceRequest) -> None:
        if not isinstance(span, _Span) or not span.is_recording():
            return
        otel = span.span
        otel.update_name(f"{span.operation} {request.model}")
        otel.set_attribute(REQUEST_MODEL, request.model)
        otel.set_attribute(STREAM, request.stream)
        body = request.body
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
            otel.set_attribute(MAX_TOKENS, max_tokens)
        for key, attribute in (("temperature", TEMPERATURE), ("top_p", TOP_P)):
            value = body.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                otel.set_attribute(attribute, float(value))

    def start_attempt(
        self,
        span: SpanHandle,
        deployment: str,
        provider: str,
        upstream_model: str | None = None,
        server_address: str | None = None,
    ) -> SpanHandle:
        if not isinstance(span, _Span):
            return NO_SPAN  # a request this tracer did not start (e.g. built in a test)
        operation = span.operation
        attributes: dict[str, str] = {
            OPERATION: operation,
            PROVIDER: PROVIDERS.get(provider, provider),
            DEPLOYMENT: deployment,
        }
        if upstream_model is not None:
            attributes[REQUEST_MODEL] = upstream_model
        if server_address is not None:
            attributes[SERVER_ADDRESS] = server_address
        child = self._tracer.start_span(
            f"{operation} {upstream_model or deployment}",
            context=trace.set_span_in_context(span.span),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        return _Span(child, operation)

    def end_attempt(self, attempt: SpanHandle, outcome: str, status: int | None = None) -> None:
        if not isinstance(attempt, _Span):
            return
        otel = attempt.span
        otel.set_attribute(OUTCOME, outcome)
        if status is not None:
            otel.set_attribute(HTTP_STATUS, status)
        if outcome != "ok":
            otel.set_attribute(ERROR_TYPE, outcome)
            otel.set_status(Status(StatusCode.ERROR, outcome))
        otel.end()

    def skip(self, span: SpanHandle, deployment: str, reason: str) -> None:
        if isinstance(span, _Span) and span.is_recording():
            span.span.add_event(SKIPPED_EVENT, {DEPLOYMENT: deployment, OUTCOME: reason})

    def inject(self, attempt: SpanHandle) -> Mapping[str, str]:
        carrier: dict[str, str] = {}
        if isinstance(attempt, _Span):
            _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(attempt.span))
        return carrier

    def end_request(
        self,
        span: SpanHandle,
        *,
        status: int,
        usage: Usage | None,
        cost: float,
        deployment: str,
        tenant: str | None = None,
        ttft: float | None = None,
        response_model: str | None = None,
        attempts: int = 0,
        fell_back: bool = False,
        cache: str | None = None,
        error_type: str | None = None,
    ) -> None:
        if not isinstance(span, _Span):
            return
        otel = span.span
        if otel.is_recording():
            otel.set_attributes(
                {
                    HTTP_STATUS: status,
                    DEPLOYMENT: deployment,
                    ATTEMPTS: attempts,
                    FALLBACK: fell_back,
                    COST: cost,
                }
            )
            if usage is not None:
                otel.set_attribute(INPUT_TOKENS, usage.input_tokens)
                otel.set_attribute(OUTPUT_TOKENS, usage.output_tokens)
                if usage.cached_tokens:
                    otel.set_attribute(CACHE_READ_TOKENS, usage.cached_tokens)
            if tenant is not None:
                otel.set_attribute(TENANT, tenant)
            if ttft is not None:
                otel.set_attribute(TIME_TO_FIRST_CHUNK, ttft)
            if response_model is not None:
                otel.set_attribute(RESPONSE_MODEL, response_model)
            if cache is not None:
                otel.set_attribute(CACHE, cache)
            if error_type is not None or status >= 400:
                otel.set_attribute(ERROR_TYPE, error_type or str(status))
            # A server span is an error only when the gateway failed (5xx); 4xx are the
            # caller's, and 499 means the caller left.
            if status >= 500:
                otel.set_status(Status(StatusCode.ERROR, error_type or str(status)))
        otel.end()

    async def shutdown(self) -> None:
        # Flushing exports over the network: a worker thread, not the event loop.
        await asyncio.to_thread(self._provider.shutdown)


def _exporter(config: TracingConfig) -> SpanExporter | None:
    if config.exporter == "none":
        return None
    if config.exporter == "console":
        return ConsoleSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("opentelemetry"):
            raise ConfigError(MISSING_EXTRA) from None
        raise
    return OTLPSpanExporter(
        endpoint=str(config.endpoint) if config.endpoint is not None else None,
        headers=dict(config.headers) or None,
    )
