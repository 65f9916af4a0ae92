"""One shared Bedrock stack for the end-to-end tests: two Bedrock emulators + one gateway.

The ``bedrock_stack`` fixture is session-scoped and registered in ``tests/e2e/conftest.py``
(imported there, so every test module shares the same processes). Both emulators run
``fulcrum sim bedrock --no-latency`` with an admin port; replies are deterministic, so every
answer the gateway gives is compared with the answer boto3's own ``bedrock-runtime`` client
gets from the same emulator for the same Converse request.

Deployments of the shared gateway:

- on ``main`` (the healthy emulator, which also accepts the bearer key ``API_KEY``):

  ===============  =====================================  ==========================
  deployment       Bedrock model id                       alias
  ===============  =====================================  ==========================
  ``br-haiku``     foundation model ``HAIKU``             ``haiku``
  ``br-us``        inference profile ``us.`` + HAIKU      ``haiku-us``
  ``br-pt``        Provisioned Throughput ARN ``PT_ARN``  ``haiku-pt``
  ``br-titan``     ``TITAN`` (``embeddings: true``)       ``titan``
  ``br-apikey``    ``SONNET``, ``auth.type: api_key``     ``sonnet-key``
  ``br-healthy``   ``eu.`` + HAIKU (the fallback target)  behind ``flaky`` / ``badsig``
  ``br-badsig``    ``global.`` + HAIKU, wrong secret key  ``badsig`` (before healthy)
  ``br-badkey``    ``us.`` + SONNET, wrong API key        ``badkey``
  ===============  =====================================  ==========================

- on ``faulty`` (faults injected per test, reset afterwards): ``br-faulty`` (HAIKU), alias
  ``faulty`` alone and ``flaky`` = ``[br-faulty, br-healthy]``.

Each deployment on ``main`` has its own model id, so the emulator's ``/admin/stats`` (request
counts per model id as sent) tell which deployment made which call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Gateway, ServerPool, http_json, http_request, poll_until, static_auth
from tests.support.servers import ServerProcess, free_port, fulcrum_command, start_server

REGION = "us-east-1"
ACCESS_KEY = "AKIDFULCRUMSIM"
SECRET_KEY = "fulcrum-sim-secret-access-key-not-a-secret"
API_KEY = "bedrock-api-key-fulcrum-e2e"

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
PT_ARN = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/fulcrumhaiku"
HAIKU_US = f"us.{HAIKU}"
HAIKU_EU = f"eu.{HAIKU}"
HAIKU_GLOBAL = f"global.{HAIKU}"
SONNET_US = f"us.{SONNET}"

#: Bedrock model id of each deployment served by the ``main`` emulator.
MAIN_MODELS = {
    "br-haiku": HAIKU,
    "br-us": HAIKU_US,
    "br-pt": PT_ARN,
    "br-titan": TITAN,
    "br-apikey": SONNET,
    "br-healthy": HAIKU_EU,
    "br-badsig": HAIKU_GLOBAL,
    "br-badkey": SONNET_US,
}


@dataclass
class BedrockEmulator:
    """A running ``fulcrum sim bedrock`` process (API port and admin port)."""

    server: ServerProcess
    admin_url: str

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    # -- the reference client ----------------------------------------------------------------

    def boto(self) -> Any:
        """boto3's ``bedrock-runtime`` client for this emulator (one call per operation)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "bedrock-runtime",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=20,
            ),
        )

    # -- admin API ---------------------------------------------------------------------------

    def admin(self, method: str, path: str, payload: Any = None) -> Any:
        result = http_json(method, f"{self.admin_url}{path}", payload, timeout=10)
        assert result.status == 200, (method, path, result.status, result.body[:300])
        return result.json()

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.admin("POST", "/admin/faults", faults)
        return answer

    def reset_faults(self) -> None:
        self.admin("DELETE", "/admin/faults")

    def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.admin("GET", "/admin/stats")
        return answer

    def count(self, model_id: str, operation: str | None = None) -> int:
        """Requests the emulator received for ``model_id`` (one operation, or all)."""
        per_op: dict[str, int] = self.stats()["requests"].get(model_id, {})
        if operation is not None:
            return int(per_op.get(operation, 0))
        return sum(int(n) for n in per_op.values())


def start_bedrock_emulator(pool: ServerPool, *flags: str) -> BedrockEmulator:
    """Start ``fulcrum sim bedrock`` on free ports (stopped by PID when ``pool`` closes)."""
    port, admin_port = free_port(), free_port()
    argv = ["sim", "bedrock", "--port", str(port), "--admin-port", str(admin_port), *flags]
    server = start_server(fulcrum_command(*argv), port, pool.root / "logs", "/ping")
    pool.servers.append(server)
    admin_url = f"http://127.0.0.1:{admin_port}"
    poll_until(
        lambda: http_request("GET", f"{admin_url}/ping", timeout=2).status == 200,
        10,
        what="bedrock emulator admin port",
    )
    return BedrockEmulator(server, admin_url)


def sigv4_auth(secret_key: str = SECRET_KEY) -> dict[str, str]:
    return {"access_key_id": ACCESS_KEY, "secret_access_key": secret_key}


def bedrock_deployment(
    emulator: BedrockEmulator,
    model: str,
    *,
    auth: dict[str, str] | None = None,
    embeddings: bool = False,
    ttft: float = 5.0,
    total: float = 20.0,
    **extra: Any,
) -> dict[str, Any]:
    """A ``provider: bedrock`` deployment entry pointed at ``emulator``."""
    entry: dict[str, Any] = {
        "provider": "bedrock",
        "region": REGION,
        "model": model,
        "endpoint_url": emulator.url,
        "auth": auth or sigv4_auth(),
        "timeouts": {"connect": 2, "ttft": ttft, "total": total},
        **extra,
    }
    if embeddings:
        entry["embeddings"] = True
    return entry


@dataclass
class BedrockStack:
    gateway: Gateway
    main: BedrockEmulator
    faulty: BedrockEmulator


@pytest.fixture(scope="session")
def bedrock_stack(session_servers: ServerPool) -> Iterator[BedrockStack]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        main_future = pool.submit(
            start_bedrock_emulator, session_servers, "--no-latency", "--api-key", API_KEY
        )
        faulty_future = pool.submit(start_bedrock_emulator, session_servers, "--no-latency")
        main, faulty = main_future.result(), faulty_future.result()
    deployments: dict[str, Any] = {
        name: bedrock_deployment(main, model) for name, model in MAIN_MODELS.items()
    }
    deployments["br-titan"]["embeddings"] = True
    deployments["br-apikey"]["auth"] = {"type": "api_key", "api_key": API_KEY}
    deployments["br-badkey"]["auth"] = {"type": "api_key", "api_key": "not-the-bedrock-key"}
    deployments["br-badsig"]["auth"] = sigv4_auth("not-the-secret-access-key")
    deployments["br-faulty"] = bedrock_deployment(faulty, HAIKU)
    config = {
        "server": {"host": "127.0.0.1"},
        "deployments": deployments,
        "models": {
            "haiku": ["br-haiku"],
            "haiku-us": ["br-us"],
            "haiku-pt": ["br-pt"],
            "titan": ["br-titan"],
            "sonnet-key": ["br-apikey"],
            "badsig": ["br-badsig", "br-healthy"],
            "badkey": ["br-badkey", "br-healthy"],
            "faulty": ["br-faulty"],
            "flaky": ["br-faulty", "br-healthy"],
        },
        "auth": static_auth(),
    }
    gateway = session_servers.gateway(config)
    yield BedrockStack(gateway, main, faulty)


@pytest.fixture
def faulty_bedrock(bedrock_stack: BedrockStack) -> Iterator[BedrockEmulator]:
    """The ``faulty`` emulator, its faults reset before and after the test."""
    bedrock_stack.faulty.reset_faults()
    try:
        yield bedrock_stack.faulty
    finally:
        bedrock_stack.faulty.reset_faults()


def converse_text(response: dict[str, Any]) -> str:
    """The text of a boto3 ``converse()`` response (its text blocks joined)."""
    blocks = response["output"]["message"]["content"]
    return "".join(block["text"] for block in blocks if "text" in block)


def converse_tool_use(response: dict[str, Any]) -> dict[str, Any]:
    """The single ``toolUse`` block of a boto3 ``converse()`` response."""
    uses = [b["toolUse"] for b in response["output"]["message"]["content"] if "toolUse" in b]
    assert len(uses) == 1, response["output"]
    return dict(uses[0])


def stream_reference(client: Any, **request: Any) -> dict[str, Any]:
    """boto3 ``converse_stream()``: text, stop reason, usage and the number of events."""
    text, stop, usage, events = "", None, None, 0
    for event in client.converse_stream(**request)["stream"]:
        events += 1
        delta = event.get("contentBlockDelta", {}).get("delta", {})
        text += delta.get("text", "")
        if "messageStop" in event:
            stop = event["messageStop"]["stopReason"]
        if "metadata" in event:
            usage = event["metadata"]["usage"]
    return {"text": text, "stop": stop, "usage": usage, "events": events}


def error_events(events: list[str]) -> list[dict[str, Any]]:
    """The ``{"error": ...}`` documents among SSE ``data:`` payloads."""
    found = []
    for data in events:
        if data.startswith("{"):
            document = json.loads(data)
            if "error" in document:
                found.append(document)
    return found
