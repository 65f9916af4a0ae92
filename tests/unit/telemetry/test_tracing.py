"""Tracing: span shapes and GenAI attributes, W3C propagation, the no-op path, a missing SDK."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from multidict import CIMultiDict
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import ValidationError

from fulcrum.errors import ConfigError
from fulcrum.providers.base import Usage
from fulcrum.schema.openai import Endpoint, InferenceRequest
from fulcrum.telemetry.tracing import (
    MISSING_EXTRA,
    NO_SPAN,
    NOOP_TRACER,
    RequestTracer,
    TracingConfig,
    build_tracer,
)

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SECRET = "my card number is 4111 1111 1111 1111"

ON = TracingConfig(enabled=True, exporter="none")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[RequestTracer]:
    tracer = build_tracer(ON, SimpleSpanProcessor(exporter))
    yield tracer


def chat(model: str = "llama-70b", **extra: Any) -> InferenceRequest:
    body = {"model": model, "messages": [{"role": "user", "content": SECRET}], **extra}
    return InferenceRequest(Endpoint.CHAT, model, body, stream=False, client_wants_usage=False)


def by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans if span.kind is kind]


def test_two_attempts_make_one_parent_and_two_children(
    tracer: RequestTracer, exporter: InMemorySpanExporter
) -> None:
    span = tracer.start_request("req-1", Endpoint.CHAT, {})
    tracer.describe_request(span, chat(max_tokens=256, temperature=0.2, top_p=1))
    first = tracer.start_attempt(
        span, "bedrock-pt", "bedrock", "meta.llama3-70b", "bedrock-runtime.us-east-1.amazonaws.com"
    )
    tracer.end_attempt(first, "http_503", 503)
    second = tracer.start_attempt(span, "vllm-a", "openai", "meta-llama/Llama-3-70B", "vllm-a")
    tracer.end_attempt(second, "ok", 200)
    tracer.end_request(
        span,
        status=200,
        usage=Usage(input_tokens=120, output_tokens=30, cached_tokens=100),
        cost=0.0042,
        deployment="vllm-a",
        tenant="acme",
        response_model="meta-llama/Llama-3-70B",
        attempts=2,
        fell_back=True,
        cache="miss",
    )

    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    [parent] = by_kind(spans, SpanKind.SERVER)
    failed, served = by_kind(spans, SpanKind.CLIENT)
    assert parent.parent is None
    for child in (failed, served):
        assert child.parent is not None
        assert child.parent.span_id == parent.context.span_id
        assert child.context.trace_id == parent.context.trace_id

    assert parent.name == "chat llama-70b"
    assert parent.status.status_code is StatusCode.UNSET
    assert dict(parent.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "fulcrum.request_id": "req-1",
        "gen_ai.request.model": "llama-70b",
        "fulcrum.stream": False,
        "gen_ai.request.max_tokens": 256,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 1.0,
        "http.response.status_code": 200,
        "fulcrum.deployment": "vllm-a",
        "fulcrum.attempts": 2,
        "fulcrum.fallback": True,
        "fulcrum.cost_usd": 0.0042,
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 100,
        "fulcrum.tenant": "acme",
        "gen_ai.response.model": "meta-llama/Llama-3-70B",
        "fulcrum.cache": "miss",
    }

    assert failed.name == "chat meta.llama3-70b"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "http_503"
    assert dict(failed.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "aws.bedrock",
        "fulcrum.deployment": "bedrock-pt",
        "gen_ai.request.model": "meta.llama3-70b",
        "server.address": "bedrock-runtime.us-east-1.amazonaws.com",
        "fulcrum.attempt.outcome": "http_503",
        "http.response.status_code": 503,
        "error.type": "http_503",
    }

    assert served.name == "chat meta-llama/Llama-3-70B"
    assert served.status.status_code is StatusCode.UNSET
    attributes = dict(served.attributes or {})
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["fulcrum.attempt.outcome"] == "ok"
    assert "error.type" not in attributes


def test_operation_names_follow_the_endpoint(
    tracer: RequestTracer, exporter: InMemorySpanExporter
) -> None:
    for endpoint in Endpoint:
        span = tracer.start_request("r", endpoint, {})
        attempt = tracer.start_attempt(span, "d", "openai")
        tracer.end_attempt(attempt, "ok")
        tracer.end_request(span, status=200, usage=None, cost=0.0, deployment="d")
    names = {
        (s.kind, s.name, (s.attributes or {})["gen_ai.operation.name"])
        for s in exporter.get_finished_spans()
    }
    assert names == {
        (SpanKind.SERVER, "chat", "chat"),
        (SpanKind.SERVER, "text_completion", "text_completion"),
        (SpanKind.SERVER, "embeddings", "embeddings"),
        (SpanKind.CLIENT, "chat d", "chat"),
        (SpanKind.CLIENT, "text_completion d", "text_completion"),
        (SpanKind.CLIENT, "embeddings d", "embeddings"),
    }


def test_no_content_or_credentials_reach_a_span(
    tracer: RequestTracer, exporter: InMemorySpanExporter
) -> None:
    headers = {"authorization": "Bearer sk-fulcrum-secret", "traceparent": "garbage"}
    span = tracer.start_request("r", Endpoint.CHAT, headers)
    tracer.describe_request(span, chat(user="someone@example.com"))
    tracer.end_request(span, status=200, usage=None, cost=0.0, deployment="d")
    [recorded] = exporter.get_finished_spans()
    values = " ".join(str(value) for value in (recorded.attributes or {}).values())
    for secret in (SECRET, "sk-fulcrum-secret", "someone@example.com"):
        assert secret not in values
    assert recorded.parent is None  # an unparsable traceparent starts a new trace


def test_caller_traceparent_is_joined(
    tracer: RequestTracer, exporter: InMemorySpanExporter
) -> None:
    headers = CIMultiDict({"Traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
    span = tracer.start_request("r", Endpoint.CHAT, headers)
    tracer.end_request(span, status=200, usage=None, cost=0.0, deployment="d")
    [recorded] = exporter.get_finished_spans()
    assert recorded.context.trace_id == int(CALLER_TRACE, 16)
    assert recorded.parent is not None
    assert recorded.parent.span_id == int(CALLER_SPAN, 16)
    assert recorded.parent.is_remote


def test_attempt_context_is_injected_upstream(
    tracer: RequestTracer, exporter: InMemorySpanExporter
) -> None:
    headers = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "vendor=1"}
    span = tracer.start_request("r", Endpoint.CHAT, headers)
    attempt = tracer.start_attempt(span, "vllm-a", "openai")
    outgoing = dict(tracer.inject(attempt))
    tracer.end_attempt(attempt, "ok")
    tracer.end_request(span, status=200, usage=None, cost=0.0, deployment="vllm-a")

    [client] = by_kind(exporter.get_finished_spans(), SpanKind.CLIENT)
    assert outgoing == {
        "traceparent": f"00-{CALLER_TRACE}-{client.context.span_id:016x}-01",
        "tracestate": "vendor=1",
    }


def test_an_unsampled_caller_is_followed(
    tracer: RequestTracer, exporter: InMemorySpanExporter
) -> None:
    headers = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"}
    span = tracer.start_request("r", Endpoint.CHAT, headers)
    assert not span.is_recording()
    attempt = tracer.start_attempt(span, "d", "openai")
    outgoing = tracer.inject(attempt)
    tracer.end_attempt(attempt, "timeout")
    tracer.end_request(span, status=504, usage=None, cost=0.0, deployment="d")
    assert exporter.get_finished_spans() == ()
    assert outgoing["traceparent"].startswith(f"00-{CALLER_TRACE}-")
    assert outgoing["traceparent"].endswith("-00")


def test_sample_ratio_zero_records_no_new_trace(exporter: InMemorySpanExporter) -> None:
    tracer = build_tracer(
        TracingConfig(enabled=True, exporter="none", sample_ratio=0.0),
        SimpleSpanProcessor(exporter),
    )
    span = tracer.start_request("r", Endpoint.CHAT, {})
    tracer.end_request(span, status=200, usage=None, cost=0.0, deployment="d")
    assert exporter.get_finished_spans() == ()


def test_server_errors_mark_the_request_span(
    tracer: RequestTracer, exporter: InMemorySpanExporter
) -> None:
    for status, error_type in ((503, "no_available_deployment"), (429, None), (499, None)):
        span = tracer.start_request("r", Endpoint.CHAT, {})
        tracer.end_request(
            span, status=status, usage=None, cost=0.0, deployment="-", error_type=error_type
        )
    unavailable, limited, left = exporter.get_finished_spans()
    assert unavailable.status.status_code is StatusCode.ERROR
    assert (unavailable.attributes or {})["error.type"] == "no_available_deployment"
    assert limited.status.status_code is StatusCode.UNSET  # the caller's fault, not ours
    assert (limited.attributes or {})["error.type"] == "429"
    assert left.status.status_code is StatusCode.UNSET
    assert (left.attributes or {})["error.type"] == "499"


def test_streams_record_time_to_first_chunk(
    tracer: RequestTracer, exporter: InMemorySpanExporter
) -> None:
    span = tracer.start_request("r", Endpoint.CHAT, {})
    body = {"model": "m", "messages": [], "max_completion_tokens": 64, "max_tokens": 9}
    tracer.describe_request(span, InferenceRequest(Endpoint.CHAT, "m", body, True, True))
    tracer.end_request(span, status=200, usage=Usage(), cost=0.0, deployment="d", ttft=0.25)
    [recorded] = exporter.get_finished_spans()
    attributes = recorded.attributes or {}
    assert attributes["fulcrum.stream"] is True
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["gen_ai.response.time_to_first_chunk"] == 0.25
    assert "gen_ai.usage.cache_read.input_tokens" not in attributes


def test_skipped_deployments_are_events(
    tracer: RequestTracer, exporter: InMemorySpanExporter
) -> None:
    span = tracer.start_request("r", Endpoint.CHAT, {})
    tracer.skip(span, "bedrock-pt", "provisioned_full")
    tracer.end_request(span, status=200, usage=None, cost=0.0, deployment="vllm-a")
    [recorded] = exporter.get_finished_spans()
    [event] = recorded.events
    assert event.name == "fulcrum.deployment_skipped"
    assert dict(event.attributes or {}) == {
        "fulcrum.deployment": "bedrock-pt",
        "fulcrum.attempt.outcome": "provisioned_full",
    }


def test_a_span_from_elsewhere_is_ignored(
    tracer: RequestTracer, exporter: InMemorySpanExporter
) -> None:
    attempt = tracer.start_attempt(NO_SPAN, "d", "openai")
    assert attempt is NO_SPAN
    assert tracer.inject(attempt) == {}
    tracer.end_attempt(attempt, "ok")
    tracer.end_request(NO_SPAN, status=200, usage=None, cost=0.0, deployment="d")
    assert exporter.get_finished_spans() == ()


def test_tracers_do_not_share_a_provider() -> None:
    one, two = InMemorySpanExporter(), InMemorySpanExporter()
    first = build_tracer(ON, SimpleSpanProcessor(one))
    second = build_tracer(ON, SimpleSpanProcessor(two))
    first.end_request(
        first.start_request("a", Endpoint.CHAT, {}), status=200, usage=None, cost=0, deployment="d"
    )
    second.end_request(
        second.start_request("b", Endpoint.CHAT, {}), status=200, usage=None, cost=0, deployment="d"
    )
    assert [(s.attributes or {})["fulcrum.request_id"] for s in one.get_finished_spans()] == ["a"]
    assert [(s.attributes or {})["fulcrum.request_id"] for s in two.get_finished_spans()] == ["b"]


@pytest.mark.parametrize("exporter_kind", ["otlp", "console", "none"])
async def test_every_exporter_builds_and_shuts_down(exporter_kind: str) -> None:
    config = TracingConfig.model_validate(
        {
            "enabled": True,
            "exporter": exporter_kind,
            "endpoint": "http://127.0.0.1:4318/v1/traces",
            "headers": {"authorization": "Bearer collector-token"},
        }
    )
    tracer = build_tracer(config)
    assert tracer.enabled
    await tracer.shutdown()  # nothing was recorded: nothing is sent


# -- off ---------------------------------------------------------------------------------------


def test_disabled_tracer_records_nothing_and_creates_no_sdk_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the no-op tracer created an OpenTelemetry SDK object")

    monkeypatch.setattr(sdk_trace.TracerProvider, "__init__", forbidden)
    monkeypatch.setattr(sdk_trace.Span, "__init__", forbidden)
    tracer = build_tracer(TracingConfig())
    assert tracer is NOOP_TRACER
    assert not tracer.enabled

    span = tracer.start_request("r", Endpoint.CHAT, {"traceparent": f"00-{CALLER_TRACE}-x-01"})
    tracer.describe_request(span, chat())
    attempt = tracer.start_attempt(span, "d", "bedrock", "m", "host")
    headers = tracer.inject(attempt)
    tracer.end_attempt(attempt, "timeout", 504)
    tracer.skip(span, "d", "circuit_open")
    tracer.end_request(span, status=200, usage=Usage(1, 2), cost=1.0, deployment="d", tenant="t")

    assert span is NO_SPAN and attempt is NO_SPAN  # one shared sentinel, nothing allocated
    assert headers is tracer.inject(attempt) and dict(headers) == {}
    assert not span.is_recording()


def test_gateway_imports_without_opentelemetry_when_tracing_is_off() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if the extra were not installed
        from fulcrum.errors import ConfigError
        from fulcrum.schema.openai import Endpoint
        from fulcrum.telemetry.tracing import TracingConfig, build_tracer
        tracer = build_tracer(TracingConfig())
        span = tracer.start_request("r", Endpoint.CHAT, {})
        tracer.end_request(span, status=200, usage=None, cost=0.0, deployment="d")
        try:
            build_tracer(TracingConfig(enabled=True))
        except ConfigError as exc:
            print(exc)
        loaded = [m for m, mod in sys.modules.items() if m.startswith("opentelemetry") and mod]
        assert not loaded, loaded
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == MISSING_EXTRA


# -- a missing extra -------------------------------------------------------------------------


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import`` of these modules fail as if they were not installed."""
    monkeypatch.delitem(sys.modules, "fulcrum.telemetry.tracing_otel", raising=False)
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_missing_sdk_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "opentelemetry.sdk.trace")
    with pytest.raises(ConfigError) as caught:
        build_tracer(ON)
    assert str(caught.value) == MISSING_EXTRA
    assert build_tracer(TracingConfig()) is NOOP_TRACER  # off still works


def test_missing_otlp_exporter_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "opentelemetry.exporter.otlp.proto.http.trace_exporter")
    with pytest.raises(ConfigError, match="fulcrum\\[tracing\\]"):
        build_tracer(TracingConfig(enabled=True, exporter="otlp"))
    assert build_tracer(TracingConfig(enabled=True, exporter="console")).enabled


# -- configuration ---------------------------------------------------------------------------


def test_config_defaults_are_off() -> None:
    config = TracingConfig()
    assert not config.enabled
    assert (config.service_name, config.exporter, config.endpoint) == ("fulcrum", "otlp", None)
    assert config.sample_ratio == 1.0 and config.headers == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"sample_ratio": 1.5},
        {"sample_ratio": -0.1},
        {"exporter": "jaeger"},
        {"endpoint": "not a url"},
        {"service_name": ""},
        {"unknown": 1},
    ],
)
def test_config_rejects(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TracingConfig.model_validate(bad)


def test_config_keeps_export_headers_out_of_its_repr() -> None:
    config = TracingConfig(headers={"authorization": "Bearer collector-token"})
    assert "collector-token" not in repr(config)
