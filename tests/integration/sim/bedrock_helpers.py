"""The Bedrock emulator as a real subprocess, boto3 clients for it, and output-shape checks.

Every check that a response "parses" goes through botocore itself: the client's own parser
produces the response, and :func:`validate_output` / :func:`validate_event` run
``botocore.validate.ParamValidator`` against the service model's output shapes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.validate import ParamValidator

from fulcrum.sim.bedrock.settings import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from tests.support.servers import ServerProcess, free_port, fulcrum_command, start_server

ACCESS_KEY = DEFAULT_ACCESS_KEY
SECRET_KEY = DEFAULT_SECRET_KEY
API_KEY = "bedrock-api-key-fulcrum-test"
REGION = "us-east-1"

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0"
LLAMA = "meta.llama3-1-8b-instruct-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
PT_SMALL = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/smallcapacit"
PT_LARGE = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/largecapacit"
PT_SMALL_TPM = 400

TEST_CATALOG = {
    "models": [
        {"id": HAIKU, "prompt_caching": True, "inference_profiles": ["us", "eu", "global"]},
        {"id": SONNET, "inference_profiles": ["us"], "rpm": 2},
        {"id": LLAMA, "images": False, "tool_choice": ["auto"], "max_output_tokens": 2048},
        {"id": TITAN, "kind": "embedding"},
    ],
    "provisioned": [
        {"arn": PT_SMALL, "model": HAIKU, "tokens_per_minute": PT_SMALL_TPM},
        {"arn": PT_LARGE, "model": HAIKU, "tokens_per_minute": 1_000_000},
    ],
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """One urllib request; HTTP error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read())


@dataclass
class BedrockEmulator:
    """A running ``fulcrum sim bedrock`` process."""

    server: ServerProcess
    url: str
    admin_url: str
    verify: str | None = None
    """CA bundle for the HTTPS API (the emulator's self-signed certificate)."""

    def client(
        self,
        attempts: int = 1,
        secret_key: str = SECRET_KEY,
        access_key: str = ACCESS_KEY,
        **config: Any,
    ) -> BaseClient:
        """boto3's ``bedrock-runtime`` client pointed at the emulator, standard retry mode.

        ``attempts`` is botocore's ``total_max_attempts`` (the first call included); botocore's
        older ``max_attempts`` key counts retries only, so ``max_attempts=3`` makes 4 calls.
        """
        return boto3.client(
            "bedrock-runtime",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            verify=self.verify,
            config=Config(
                retries={"total_max_attempts": attempts, "mode": "standard"},
                read_timeout=30,
                connect_timeout=5,
                **config,
            ),
        )

    def admin(self, method: str, path: str, payload: Any = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        reply = http(method, f"{self.admin_url}{path}", body)
        assert reply.status == 200, (reply.status, reply.body)
        return reply.json()

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("POST", "/admin/faults", faults)
        return result

    def reset(self) -> None:
        """Healthy again, with fresh counters, quota windows and prompt cache."""
        self.admin("DELETE", "/admin/faults")
        self.admin("DELETE", "/admin/state")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("GET", "/admin/stats")
        return result

    def calls(self, model_id: str, operation: str = "Converse") -> int:
        return int(self.stats()["requests"].get(model_id, {}).get(operation, 0))

    def signed(
        self, method: str, raw_path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        """A raw request to ``raw_path`` (sent as is), signed with SigV4 by botocore."""
        request = AWSRequest(
            method=method, url=f"{self.url}{raw_path}", data=body, headers=headers or {}
        )
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "bedrock", REGION).add_auth(request)
        return http(method, f"{self.url}{raw_path}", body or None, dict(request.headers.items()))


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 made with the openssl CLI (skip if absent)."""
    import pytest

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def start_bedrock(
    log_dir: Path, *flags: str, catalog: dict[str, Any] | None = None, tls: bool = False
) -> BedrockEmulator:
    """Start ``fulcrum sim bedrock`` on free ports (API + admin) and wait until it answers."""
    port, admin_port = free_port(), free_port()
    argv = ["sim", "bedrock", "--port", str(port), "--admin-port", str(admin_port)]
    log_dir.mkdir(parents=True, exist_ok=True)
    if catalog is not None:
        path = log_dir / f"catalog-{port}.json"
        path.write_text(json.dumps(catalog))
        argv += ["--catalog", str(path)]
    verify = None
    if tls:
        cert, key = self_signed_certificate(log_dir / f"tls-{port}")
        argv += ["--tls-cert", str(cert), "--tls-key", str(key)]
        verify = str(cert)
    # Readiness is polled on the admin port (plain HTTP), which starts after the API port.
    server = start_server(fulcrum_command(*argv, *flags), admin_port, log_dir, ready_path="/ping")
    scheme = "https" if tls else "http"
    return BedrockEmulator(
        server, f"{scheme}://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}", verify
    )


# ------------------------------------------------------------------------- shape checks


def _without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def validate_output(client: BaseClient, operation: str, response: dict[str, Any]) -> None:
    """The parsed response validates against the operation's output shape."""
    shape = client.meta.service_model.operation_model(operation).output_shape
    report = ParamValidator().validate(_without_metadata(response), shape)
    assert not report.has_errors(), report.generate_report()
    if "stopReason" in response:
        assert response["stopReason"] in shape.members["stopReason"].enum


def validate_event(client: BaseClient, event: dict[str, Any]) -> str:
    """One ConverseStream event validates against its member shape; returns the event name."""
    union = client.meta.service_model.operation_model("ConverseStream").output_shape.members[
        "stream"
    ]
    assert len(event) == 1, event
    (name, body) = next(iter(event.items()))
    report = ParamValidator().validate(body, union.members[name])
    assert not report.has_errors(), report.generate_report()
    if name == "messageStop":
        assert body["stopReason"] in union.members[name].members["stopReason"].enum
    return name


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


WEATHER_TOOL = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "inputSchema": {
            "json": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city", "unit"],
            }
        },
    }
}
