"""Helpers for the routing end-to-end tests: observable emulators and a bounded load driver.

The routing tests assert *where requests went* from the upstreams' own records, never from the
gateway's word alone:

- a vLLM emulator started here runs with ``--access-log`` (one line per HTTP request, flushed
  as it is written) and ``--admin-port`` (so ``refuse_connections`` can be switched off again);
  :class:`VllmNode` reads its log from a byte offset, so each test counts only its own traffic,
  including requests the emulator answered with an injected error;
- a Bedrock emulator counts every request per model id as sent (``/admin/stats``), so each
  Bedrock deployment gets a model id of its own.

:class:`Load` drives a bounded number of concurrent ``openai.AsyncOpenAI`` requests (a count
and a time limit) and keeps, for each, what the client saw: status, serving deployment,
fallback reasons, and for streams whether any chunk had arrived before an error.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from tests.conftest import (
    Emulator,
    Gateway,
    ServerPool,
    http_json,
    http_request,
    metric_value,
    poll_until,
)
from tests.e2e.bedrock_fixtures import BedrockEmulator, bedrock_deployment
from tests.support.servers import free_port

MESSAGES = [{"role": "user", "content": "Name three rivers of South America."}]
CHAT = "/v1/chat/completions"
_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) ')


# --------------------------------------------------------------------------------------------
# vLLM emulators with an access log and an admin port
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """One line of a vLLM emulator's access log."""

    method: str
    path: str
    status: int

    @property
    def chat(self) -> bool:
        return self.method == "POST" and self.path.startswith(CHAT)

    @property
    def health(self) -> bool:
        return self.method == "GET" and self.path == "/health"

    @property
    def admin(self) -> bool:
        return self.path.startswith("/admin/faults") and self.method in ("POST", "DELETE")


@dataclass
class VllmNode:
    """A ``fulcrum sim vllm`` process whose requests can be counted from its access log."""

    emulator: Emulator
    admin_url: str

    @property
    def model(self) -> str:
        return self.emulator.model

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    @property
    def log_path(self) -> Path:
        return self.emulator.server.log_path

    def faults(self, **faults: Any) -> None:
        """Merge ``faults`` into the active set (through the admin port)."""
        result = http_json("POST", f"{self.admin_url}/admin/faults", faults, timeout=10)
        assert result.status == 200, (result.status, result.body[:300])

    def reset(self) -> None:
        result = http_request("DELETE", f"{self.admin_url}/admin/faults", timeout=10)
        assert result.status in (200, 204), (result.status, result.body[:300])

    def mark(self) -> int:
        """A position in the access log: count from here on."""
        return self.log_path.stat().st_size

    def access(self, since: int = 0) -> list[Access]:
        """Complete access-log lines written after ``since`` (a :meth:`mark`)."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            text = log.read().decode("utf-8", "replace")
        lines = text.split("\n")[:-1]  # the last piece is empty or a line still being written
        found = []
        for line in lines:
            match = _ACCESS_LINE.search(line)
            if match:
                found.append(Access(match["method"], match["path"], int(match["status"])))
        return found

    def chats(self, since: int = 0, status: int | None = None) -> int:
        """Chat-completion requests this emulator received (and answered) since ``since``."""
        return sum(
            1
            for line in self.access(since)
            if line.chat and (status is None or line.status == status)
        )

    def waiting(self) -> float:
        return metric_value(self.emulator.metrics(), "vllm:num_requests_waiting")


def start_vllm(pool: ServerPool, model: str, *flags: str, latency: bool = False) -> VllmNode:
    """Start an emulator with an access log and an admin port (stopped by PID with ``pool``)."""
    admin_port = free_port()
    speed = () if latency else ("--no-latency",)
    emulator = pool.emulator(model, "--admin-port", str(admin_port), "--access-log", *speed, *flags)
    admin_url = f"http://127.0.0.1:{admin_port}"
    poll_until(
        lambda: http_request("GET", f"{admin_url}/admin/faults", timeout=2).status == 200,
        10,
        what=f"admin port of {model}",
    )
    return VllmNode(emulator, admin_url)


def vllm_deployment(
    node: VllmNode,
    *,
    interval: float = 0.5,
    tags: Mapping[str, Any] | None = None,
    ttft: float = 10.0,
    total: float = 20.0,
    max_waiting: int | None = None,
) -> dict[str, Any]:
    """A ``provider: openai`` deployment for ``node`` with an active probe every ``interval``."""
    health: dict[str, Any] = {"path": "/health", "interval": interval, "timeout": 1.0}
    if max_waiting is not None:
        health["max_waiting"] = max_waiting
    return {
        "provider": "openai",
        "base_url": node.base_url,
        "model": node.model,
        "timeouts": {"connect": 1.0, "ttft": ttft, "total": total},
        "health_check": health,
        "tags": dict(tags or {}),
    }


def bedrock_route(
    emulator: BedrockEmulator, model: str, *, region: str = "us-east-1", **extra: Any
) -> dict[str, Any]:
    """A Bedrock deployment on an emulator started with ``--no-auth`` (cheap bearer auth)."""
    return bedrock_deployment(
        emulator,
        model,
        auth={"type": "api_key", "api_key": "bedrock-key-unchecked-by-the-emulator"},
        region=region,
        **extra,
    )


def bedrock_requests(emulator: BedrockEmulator) -> dict[str, int]:
    """Requests the Bedrock emulator received, per model id as sent (all operations)."""
    per_model: dict[str, dict[str, int]] = emulator.stats()["requests"]
    return {model: sum(ops.values()) for model, ops in per_model.items()}


def key_of(tenant: str) -> str:
    return f"fulcrum-routing-{tenant}-key-0123456789"


def tenant_auth(*tenants: str) -> list[dict[str, str]]:
    """``auth`` entries: one clear key per tenant (see :func:`key_of`)."""
    return [{"key": key_of(tenant), "tenant": tenant} for tenant in tenants]


# --------------------------------------------------------------------------------------------
# Bounded concurrent load through the openai SDK
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the client saw for one request."""

    started: float
    ended: float
    stream: bool
    status: int  # HTTP status; 0 when there was no HTTP answer
    deployment: str | None = None
    fallback: str = ""
    workload: str | None = None
    chunks: int = 0  # stream chunks received (before an error, if any)
    error: str | None = None
    total_tokens: int | None = None

    @property
    def failed_before_start(self) -> bool:
        """A failure the client saw before any content: what failover must prevent."""
        return self.status != 200 or (self.error is not None and self.chunks == 0)


async def chat_once(
    client: openai.AsyncOpenAI,
    model: str,
    *,
    stream: bool = False,
    max_tokens: int | None = 8,
    headers: Mapping[str, str] | None = None,
) -> Outcome:
    """One chat completion through the SDK; every outcome is returned, none raised."""
    started = time.monotonic()
    options: dict[str, Any] = {"model": model, "messages": MESSAGES, "stream": stream}
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
    if headers:
        options["extra_headers"] = dict(headers)
    outcome = Outcome(started=started, ended=started, stream=stream, status=0)
    try:
        raw = await client.chat.completions.with_raw_response.create(**options)
        outcome.status = raw.status_code
        outcome.deployment = raw.headers.get("x-fulcrum-deployment")
        outcome.fallback = raw.headers.get("x-fulcrum-fallback", "")
        outcome.workload = raw.headers.get("x-fulcrum-workload")
        parsed = raw.parse()  # the SDK's legacy raw response: parsing is synchronous
        if stream:
            try:
                async for _ in parsed:
                    outcome.chunks += 1
            except openai.APIError as exc:
                outcome.error = f"mid-stream: {exc}"
        elif parsed.usage is not None:
            outcome.total_tokens = parsed.usage.total_tokens
    except openai.APIStatusError as exc:
        outcome.status = exc.status_code
        outcome.deployment = exc.response.headers.get("x-fulcrum-deployment")
        outcome.fallback = exc.response.headers.get("x-fulcrum-fallback", "")
        outcome.error = exc.message
    except openai.APIError as exc:  # connection errors, timeouts
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.ended = time.monotonic()
    return outcome


@dataclass
class Load:
    """``workers`` concurrent clients sending chat requests until stopped or a limit is hit.

    Bounded in count (``max_requests``) and time (``max_seconds``). Every ``stream_every``-th
    request streams (0: none do).
    """

    client: openai.AsyncOpenAI
    model: str
    workers: int = 8
    max_requests: int = 1000
    max_seconds: float = 30.0
    stream_every: int = 0
    max_tokens: int | None = 8
    headers: Mapping[str, str] | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    _issued: int = 0
    _stopping: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> Load:
        deadline = time.monotonic() + self.max_seconds
        self._tasks = [
            asyncio.get_running_loop().create_task(self._worker(deadline))
            for _ in range(self.workers)
        ]
        return self

    async def _worker(self, deadline: float) -> None:
        while (
            not self._stopping and self._issued < self.max_requests and time.monotonic() < deadline
        ):
            number = self._issued
            self._issued += 1
            stream = self.stream_every > 0 and number % self.stream_every == 0
            self.outcomes.append(
                await chat_once(
                    self.client,
                    self.model,
                    stream=stream,
                    max_tokens=self.max_tokens,
                    headers=self.headers,
                )
            )

    async def stop(self) -> list[Outcome]:
        self._stopping = True
        await asyncio.gather(*self._tasks)
        return self.outcomes

    async def finish(self) -> list[Outcome]:
        """Wait until the count or time limit ends the load."""
        await asyncio.gather(*self._tasks)
        return self.outcomes

    def served(self, deployment: str, after: float = 0.0) -> int:
        return sum(
            1
            for o in self.outcomes
            if o.status == 200 and o.deployment == deployment and o.started >= after
        )


async def until(
    condition: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> Any:
    """Async ``poll_until``: await ``condition`` (sync ones run in a thread) until truthy."""
    deadline = time.monotonic() + timeout
    while True:
        if asyncio.iscoroutinefunction(condition):
            value = await condition()
        else:
            value = await asyncio.to_thread(condition)
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what} (last={value!r})")
        await asyncio.sleep(interval)


def gateway_metric(gateway: Gateway, name: str, **labels: str) -> float:
    return metric_value(gateway.metrics(), name, **labels)


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    """Counts per (status, deployment), for assertion messages."""
    counts: dict[str, int] = {}
    for o in outcomes:
        key = f"{o.status}:{o.deployment}"
        counts[key] = counts.get(key, 0) + 1
    return counts
