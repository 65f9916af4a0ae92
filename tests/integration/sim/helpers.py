"""Small HTTP helpers for the emulator tests: real sockets, bounded waits, no sleeping blind."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import ServerProcess


@dataclass
class Sim:
    """A running emulator: its process and, when it has one, its admin URL."""

    server: ServerProcess
    admin_url: str | None = None

    @property
    def url(self) -> str:
        return self.server.url


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, payload: Any = None, raw: bytes | None = None) -> Reply:
    """One request with urllib; HTTP error statuses are returned, not raised."""
    data = (
        raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    )
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read())


def metric_values(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` keyed by (sample name, sorted labels)."""
    text = http("GET", f"{url}/metrics").body.decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def gauge(url: str, name: str) -> float:
    """The single value of an unlabelled-by-reason vLLM series (model_name/engine only)."""
    values = [v for (n, _), v in metric_values(url).items() if n == name]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


def success_count(url: str, reason: str) -> float:
    for (name, labels), value in metric_values(url).items():
        if name == "vllm:request_success_total" and ("finished_reason", reason) in labels:
            return value
    raise AssertionError(f"no request_success series for {reason}")


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sse_events(body: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [
        block[len("data: ") :]
        for block in body.decode().split("\n\n")
        if block.startswith("data: ")
    ]
