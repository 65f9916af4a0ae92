"""Shared fixtures: real emulator and gateway processes on free ports, and clients for them.

Every server is a child process started on a free port of 127.0.0.1 and stopped by PID when the
fixture that started it ends. Readiness and every later condition are polled with a deadline;
nothing here sleeps to synchronise.

- ``emulator(model, *flags)`` starts ``fulcrum sim vllm`` (function-scoped factory).
- ``gateway(config, env=...)`` writes the YAML configuration and starts ``fulcrum serve``
  (function-scoped factory).
- ``module_servers`` / ``session_servers`` are the same factories with a wider lifetime, for
  modules that share one set of processes across their tests.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.support.servers import ServerProcess, free_port, fulcrum_command, start_server

pytest_plugins = ["tests.support.redis", "tests.support.postgres", "tests.support.moto"]

if TYPE_CHECKING:
    import openai

#: The key the test gateways accept, given to them through ``${FULCRUM_TEST_KEY}``.
NEVER_OPEN_BREAKER = {"consecutive_failures": 1_000_000, "min_requests": 1_000_000}
TEST_KEY = "fulcrum-test-key-acme-0123456789"
#: A second key, configured only by its SHA-256 (``key_sha256``).
TEST_KEY_GLOBEX = "fulcrum-test-key-globex-9876543210"


# --------------------------------------------------------------------------------------------
# Plain HTTP helpers (urllib: no event loop, no connection reuse surprises)
# --------------------------------------------------------------------------------------------


@dataclass
class HttpResult:
    """Status, headers (lower-cased names) and body of one HTTP exchange."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> HttpResult:
    """One HTTP request; an HTTP error status is returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpResult(
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return HttpResult(
            error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()
        )


def http_json(
    method: str,
    url: str,
    payload: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> HttpResult:
    """Send ``payload`` as JSON (when given) and return the raw result."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    body = None if payload is None else json.dumps(payload).encode()
    return http_request(method, url, body, all_headers, timeout)


def poll_until(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Call ``condition`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what} (last={last!r})")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Prometheus text parsing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSample:
    name: str
    labels: Mapping[str, str]
    value: float


def parse_metrics(text: str) -> list[MetricSample]:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        MetricSample(sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def metric_value(samples: list[MetricSample], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(
        sample.value
        for sample in samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


@dataclass
class Emulator:
    """A running ``fulcrum sim vllm`` process."""

    server: ServerProcess
    model: str
    max_model_len: int | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def stop(self) -> None:
        self.server.stop()

    # -- fault injection (the emulator's admin API) -----------------------------------------

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Apply faults (e.g. ``added_latency_ms=2000``); returns the emulator's answer."""
        result = http_json("POST", f"{self.url}/admin/faults", faults)
        assert result.status == 200, (result.status, result.body)
        return dict(result.json())

    def reset_faults(self) -> None:
        result = http_request("DELETE", f"{self.url}/admin/faults")
        assert result.status in (200, 204), (result.status, result.body)

    # -- observation --------------------------------------------------------------------------

    def metrics(self) -> list[MetricSample]:
        result = http_request("GET", f"{self.url}/metrics")
        assert result.status == 200, result.status
        return parse_metrics(result.body.decode())

    def requests_running(self) -> float:
        return metric_value(self.metrics(), "vllm:num_requests_running")

    def client(self) -> openai.OpenAI:
        """An SDK client that talks to the emulator directly (the reference answers)."""
        import openai

        return openai.OpenAI(api_key="unused", base_url=self.base_url, max_retries=0, timeout=30)

    def async_client(self) -> openai.AsyncOpenAI:
        import openai

        return openai.AsyncOpenAI(
            api_key="unused", base_url=self.base_url, max_retries=0, timeout=60
        )


@dataclass
class Gateway:
    """A running ``fulcrum serve`` process and the configuration it was given."""

    server: ServerProcess
    config: dict[str, Any]
    config_path: Path
    api_key: str | None = TEST_KEY

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def stop(self) -> None:
        self.server.stop()

    def client(self, api_key: str | None = None, **kwargs: Any) -> openai.OpenAI:
        """An ``openai.OpenAI`` client for this gateway (no SDK retries: we count requests)."""
        import openai

        options: dict[str, Any] = {"max_retries": 0, "timeout": 30.0, **kwargs}
        return openai.OpenAI(
            api_key=api_key or self.api_key or "no-auth", base_url=self.base_url, **options
        )

    def async_client(self, api_key: str | None = None, **kwargs: Any) -> openai.AsyncOpenAI:
        import openai

        options: dict[str, Any] = {"max_retries": 0, "timeout": 60.0, **kwargs}
        return openai.AsyncOpenAI(
            api_key=api_key or self.api_key or "no-auth", base_url=self.base_url, **options
        )

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def post(
        self,
        path: str,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> HttpResult:
        """POST JSON to ``/v1/<path>`` with this gateway's key."""
        return http_json(
            "POST",
            f"{self.base_url}/{path.lstrip('/')}",
            payload,
            {**self.auth_headers(), **(headers or {})},
            timeout,
        )

    def metrics(self) -> list[MetricSample]:
        result = http_request("GET", f"{self.url}/metrics")
        assert result.status == 200, (result.status, result.body[:200])
        return parse_metrics(result.body.decode())


@dataclass
class ServerPool:
    """Starts emulators and gateways and stops every one of them (by PID) on ``close``."""

    root: Path
    servers: list[ServerProcess] = field(default_factory=list)

    def emulator(
        self, model: str = "emu-model", *flags: str, max_model_len: int | None = None
    ) -> Emulator:
        port = free_port()
        argv = ["sim", "vllm", "--port", str(port), "--model", model, *flags]
        if max_model_len is not None:
            argv += ["--max-model-len", str(max_model_len)]
        server = start_server(fulcrum_command(*argv), port, self.root / "logs", "/health")
        self.servers.append(server)
        return Emulator(server, model, max_model_len)

    def emulators(self, *specs: tuple[str, tuple[str, ...], int | None]) -> list[Emulator]:
        """Start several emulators at once: each spec is ``(model, flags, max_model_len)``."""
        with ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
            futures = [
                pool.submit(self.emulator, model, *flags, max_model_len=max_len)
                for model, flags, max_len in specs
            ]
            return [future.result() for future in futures]

    def gateway(
        self,
        config: dict[str, Any],
        env: Mapping[str, str] | None = None,
        api_key: str | None = TEST_KEY,
    ) -> Gateway:
        port = free_port()
        config_path = self.root / f"gateway-{port}.yaml"
        if "routing" not in config:
            # Suites that inject faults at a 100 % rate test error mapping and fallback, not
            # the circuit breaker: keep it from opening unless a test configures it.
            config = {**config, "routing": {"breaker": NEVER_OPEN_BREAKER}}
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        full_env = {"FULCRUM_TEST_KEY": TEST_KEY, **(env or {})}
        server = start_server(
            fulcrum_command("serve", "--config", str(config_path), "--port", str(port)),
            port,
            self.root / "logs",
            "/healthz",
            env=full_env,
        )
        self.servers.append(server)
        return Gateway(server, config, config_path, api_key)

    def close(self) -> None:
        errors: list[BaseException] = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        self.servers.clear()
        if errors:
            raise errors[0]


def deployment(
    emulator_or_url: Emulator | str,
    model: str | None = None,
    *,
    connect: float = 2.0,
    ttft: float = 30.0,
    total: float = 60.0,
    interval: float = 1.0,
    **extra: Any,
) -> dict[str, Any]:
    """A deployment entry of the gateway configuration for an emulator (or any base URL)."""
    if isinstance(emulator_or_url, Emulator):
        base_url, model = emulator_or_url.base_url, model or emulator_or_url.model
    else:
        base_url = emulator_or_url
    return {
        "provider": "openai",
        "base_url": base_url,
        "model": model or "unused-model",
        "timeouts": {"connect": connect, "ttft": ttft, "total": total},
        "health_check": {"path": "/health", "interval": interval},
        **extra,
    }


def static_auth() -> list[dict[str, str]]:
    """The ``auth`` section used by the test gateways: one key via env, one by its hash."""
    import hashlib

    return [
        {"key": "${FULCRUM_TEST_KEY}", "tenant": "acme"},
        {"key_sha256": hashlib.sha256(TEST_KEY_GLOBEX.encode()).hexdigest(), "tenant": "globex"},
    ]


def _pool(tmp: Path) -> Iterator[ServerPool]:
    pool = ServerPool(tmp)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def server_pool(tmp_path: Path) -> Iterator[ServerPool]:
    """Servers that live for one test."""
    yield from _pool(tmp_path)


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """Servers that live for one test module."""
    yield from _pool(tmp_path_factory.mktemp("module-servers"))


@pytest.fixture(scope="session")
def session_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """Servers that live for the whole session."""
    yield from _pool(tmp_path_factory.mktemp("session-servers"))


@pytest.fixture
def emulator(server_pool: ServerPool) -> Callable[..., Emulator]:
    """Factory: ``emulator(model, *flags, max_model_len=None)`` starts ``fulcrum sim vllm``."""
    return server_pool.emulator


@pytest.fixture
def gateway(server_pool: ServerPool) -> Callable[..., Gateway]:
    """Factory: ``gateway(config, env=None, api_key=TEST_KEY)`` starts ``fulcrum serve``."""
    return server_pool.gateway
