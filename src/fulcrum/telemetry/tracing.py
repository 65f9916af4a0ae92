"""Optional OpenTelemetry tracing: one span per request, one child span per upstream attempt.

Off by default. The pipeline talks to a ``RequestTracer`` and never to OpenTelemetry itself:
when tracing is off it holds a ``NoopTracer`` whose methods return one shared sentinel, so the
hot path pays a method call and nothing else, and OpenTelemetry need not even be installed.
When it is on, ``build_tracer`` imports the SDK-backed tracer (``tracing_otel``) lazily.

Spans carry OpenTelemetry GenAI semantic-convention attributes (model, provider, tokens) and
Fulcrum's own routing facts (deployment, attempt outcome, fallback, cache). They never carry
prompt or response content, credentials or keys; the tenant's name is the only tenant fact.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from fulcrum.config import TracingConfig
from fulcrum.errors import ConfigError
from fulcrum.providers.base import Usage
from fulcrum.schema.openai import Endpoint, InferenceRequest

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

MISSING_EXTRA = "tracing.enabled needs the tracing extra: pip install 'fulcrum[tracing]'"


class SpanHandle(Protocol):
    """What the pipeline holds for a request or an attempt; opaque apart from this."""

    def is_recording(self) -> bool:
        """False for the no-op tracer and for unsampled traces: skip costly attributes."""
        ...


class RequestTracer(Protocol):
    """The narrow interface the pipeline calls; see ``NoopTracer`` for the cost when off."""

    @property
    def enabled(self) -> bool: ...

    def start_request(
        self, request_id: str, endpoint: Endpoint, headers: Mapping[str, str]
    ) -> SpanHandle:
        """Open the request's span, joining the caller's trace from its ``traceparent``."""
        ...

    def describe_request(self, span: SpanHandle, request: InferenceRequest) -> None:
        """Name the span after the model and record the request parameters (never content)."""
        ...

    def start_attempt(
        self,
        span: SpanHandle,
        deployment: str,
        provider: str,
        upstream_model: str | None = None,
        server_address: str | None = None,
    ) -> SpanHandle:
        """Open a child span for one upstream call; ``provider`` is the deployment's kind."""
        ...

    def end_attempt(self, attempt: SpanHandle, outcome: str, status: int | None = None) -> None:
        """Close an attempt: ``outcome`` is "ok" or the failure reason (an error status)."""
        ...

    def skip(self, span: SpanHandle, deployment: str, reason: str) -> None:
        """Note a deployment passed over without a call (circuit open, PT capacity full)."""
        ...

    def inject(self, attempt: SpanHandle) -> Mapping[str, str]:
        """The ``traceparent`` (and ``tracestate``) headers to send upstream for an attempt."""
        ...

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
        """Record how the request ended (HTTP status, usage, cost, where it was served)."""
        ...

    async def shutdown(self) -> None:
        """Flush spans still buffered and stop exporting (off the event loop)."""
        ...


class _NoSpan:
    """The one handle the no-op tracer ever returns."""

    __slots__ = ()

    def is_recording(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NO_SPAN"


NO_SPAN: SpanHandle = _NoSpan()
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class NoopTracer:
    """Tracing off: every call returns at once, allocating nothing but its frame."""

    __slots__ = ()

    @property
    def enabled(self) -> bool:
        return False

    def start_request(
        self, request_id: str, endpoint: Endpoint, headers: Mapping[str, str]
    ) -> SpanHandle:
        return NO_SPAN

    def describe_request(self, span: SpanHandle, request: InferenceRequest) -> None:
        return None

    def start_attempt(
        self,
        span: SpanHandle,
        deployment: str,
        provider: str,
        upstream_model: str | None = None,
        server_address: str | None = None,
    ) -> SpanHandle:
        return NO_SPAN

    def end_attempt(self, attempt: SpanHandle, outcome: str, status: int | None = None) -> None:
        return None

    def skip(self, span: SpanHandle, deployment: str, reason: str) -> None:
        return None

    def inject(self, attempt: SpanHandle) -> Mapping[str, str]:
        return _NO_HEADERS

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
        return None

    async def shutdown(self) -> None:
        return None


NOOP_TRACER = NoopTracer()


def build_tracer(config: TracingConfig, processor: SpanProcessor | None = None) -> RequestTracer:
    """The tracer for ``config``; ``processor`` replaces batching and export (for tests)."""
    if not config.enabled:
        return NOOP_TRACER
    try:
        from fulcrum.telemetry.tracing_otel import OtelTracer
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("opentelemetry"):
            raise ConfigError(MISSING_EXTRA) from None
        raise
    return OtelTracer.from_config(config, processor)


__all__ = [
    "MISSING_EXTRA",
    "NOOP_TRACER",
    "NO_SPAN",
    "NoopTracer",
    "RequestTracer",
    "SpanHandle",
    "TracingConfig",
    "build_tracer",
]
