"""OpenTelemetry tracing end to end: a gateway process exporting OTLP/HTTP to a local collector.

The collector is a plain HTTP server in this test that keeps what it receives; the spans are
decoded with the OTLP protobuf types. A request that falls back gives one request span with
two attempt spans under it, joined to the caller's trace by ``traceparent``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import ServerPool, deployment
from tests.support.servers import free_port

pb = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class _Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[bytes]]]:
    _Collector.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", _Collector.bodies
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _spans(bodies: list[bytes]) -> list[Any]:
    spans = []
    for body in bodies:
        request = pb.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
    return spans


def _attributes(span: Any) -> dict[str, Any]:
    values = {}
    for item in span.attributes:
        value = item.value
        kind = value.WhichOneof("value")
        values[item.key] = getattr(value, kind) if kind else None
    return values


def test_a_fallback_is_one_request_span_with_two_attempt_spans(
    server_pool: ServerPool, collector: tuple[str, list[bytes]]
) -> None:
    endpoint, bodies = collector
    emulator = server_pool.emulator("upstream-traced", "--no-latency")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = {
        "deployments": {
            "dead": deployment(dead, "unused", connect=0.5, health_check={"enabled": False}),
            "vllm": deployment(emulator),
        },
        "models": {"chat": ["dead", "vllm"]},
        "auth": "none",
        "tracing": {"enabled": True, "exporter": "otlp", "endpoint": endpoint},
    }
    gateway = server_pool.gateway(config, api_key=None)
    client = gateway.client(default_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    answer = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5, temperature=0
    )
    assert answer.usage is not None
    gateway.stop()  # a graceful stop flushes the batch processor

    spans = _spans(bodies)
    requests = [s for s in spans if s.name == "chat chat"]
    assert len(requests) == 1, [s.name for s in spans]
    request = requests[0]
    assert request.trace_id.hex() == TRACE_ID  # joined the caller's trace
    assert request.parent_span_id.hex() == PARENT_ID
    attributes = _attributes(request)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "chat"
    assert attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert attributes["fulcrum.deployment"] == "vllm"

    attempts = [s for s in spans if s.parent_span_id == request.span_id]
    assert len(attempts) == 2
    by_deployment = {_attributes(s)["fulcrum.deployment"]: s for s in attempts}
    assert set(by_deployment) == {"dead", "vllm"}
    assert _attributes(by_deployment["dead"])["fulcrum.attempt.outcome"] == "unreachable"
    assert by_deployment["dead"].status.code == 2  # STATUS_CODE_ERROR
    assert _attributes(by_deployment["vllm"])["fulcrum.attempt.outcome"] == "ok"
    # No content and no credentials in any span.
    for span in spans:
        for value in _attributes(span).values():
            assert value != "hi"
