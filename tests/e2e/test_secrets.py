"""No secret ever leaves the gateway: not in logs, metrics, error bodies, headers, the store
or the audit log.

One gateway with every kind of credential (a static key, a store key made by the CLI, a JWT
from a real JWKS endpoint) in front of a vLLM emulator and a SigV4-signed Bedrock emulator.
It is sent good and bad credentials of each kind; then everything the gateway wrote or
answered is searched for every secret it was given or shown.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import ServerPool, deployment, http_json, http_request
from tests.e2e.bedrock_fixtures import HAIKU, bedrock_deployment, start_bedrock_emulator
from tests.support.servers import fulcrum_command

STATIC_KEY = "sk-static-secret-7f3a9c2e4b1d8f6a"
WRONG_KEY = "sk-attacker-guess-5e8d2c9b7a4f1e3d"
AWS_SECRET = "aws-secret-access-key-Zq8Xv2Lm9Np4Rt6Wy1"
ISSUER = "https://idp.secrets.test/"
AUDIENCE = "fulcrum"


class _Jwks(BaseHTTPRequestHandler):
    """Serves the one public key; a thread of a plain HTTP server (no event loop needed)."""

    body = b"{}"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def jwks() -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk = {**public, "kid": "k1", "use": "sig", "alg": "RS256"}
    _Jwks.body = json.dumps({"keys": [jwk]}).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", key
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _token(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-1", "tenant": "acme", "exp": now + 300}
    return jwt.encode({**payload, **claims}, key, algorithm="RS256", headers={"kid": "k1"})


def _create_store_key(pool: ServerPool) -> str:
    run = subprocess.run(
        fulcrum_command(
            "keys", "create", "--store", f"sqlite:///{pool.root}/fulcrum.db", "--tenant", "acme"
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return run.stdout.strip()


def test_no_secret_appears_anywhere_after_good_and_bad_requests(
    server_pool: ServerPool, jwks: tuple[str, rsa.RSAPrivateKey]
) -> None:
    jwks_url, signing_key = jwks
    store_key = _create_store_key(server_pool)
    emulator = server_pool.emulator("upstream-secrets", "--no-latency")
    bedrock = start_bedrock_emulator(server_pool, "--no-latency", "--secret-key", AWS_SECRET)
    config = {
        "deployments": {
            "vllm": deployment(emulator),
            "bedrock": bedrock_deployment(
                bedrock,
                HAIKU,
                auth={"access_key_id": "AKIDFULCRUMSIM", "secret_access_key": "${AWS_SECRET}"},
            ),
        },
        "models": {"chat": ["vllm"], "haiku": ["bedrock"]},
        "tenants": {"acme": {"limits": {"rpm": 1000}}},
        "auth": {
            "keys": [{"key": "${STATIC_KEY}", "tenant": "acme"}],
            "jwt": [{"issuer": ISSUER, "jwks_url": jwks_url, "audience": AUDIENCE}],
        },
        "server": {"access_log": True},
        "audit": {
            "enabled": True,
            "spool_dir": str(server_pool.root / "audit-spool"),
            "sink": {"type": "directory", "path": str(server_pool.root / "audit-shipped")},
        },
    }
    gateway = server_pool.gateway(config, env={"STATIC_KEY": STATIC_KEY, "AWS_SECRET": AWS_SECRET})
    good_jwt = _token(signing_key)
    expired_jwt = _token(signing_key, exp=int(time.time()) - 3600)
    wrong_aud_jwt = _token(signing_key, aud="someone-else")
    tampered_jwt = good_jwt[: good_jwt.rindex(".")] + ".AAAA" + good_jwt[-20:]
    tampered_store_key = store_key[:-6] + "abcdef"

    credentials = {
        STATIC_KEY: 200,
        store_key: 200,
        good_jwt: 200,
        WRONG_KEY: 401,
        tampered_store_key: 401,
        expired_jwt: 401,
        wrong_aud_jwt: 401,
        tampered_jwt: 401,
    }
    seen: list[str] = []
    for credential, expected in credentials.items():
        for model in ("chat", "haiku"):
            result = http_json(
                "POST",
                f"{gateway.base_url}/chat/completions",
                {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                {"Authorization": f"Bearer {credential}"},
            )
            assert result.status == expected, (model, result.status, result.body[:300])
            seen.append(result.body.decode(errors="replace"))
            seen.append(json.dumps(result.headers))
        models = http_request(
            "GET", f"{gateway.base_url}/models", headers={"x-api-key": credential}
        )
        seen.append(models.body.decode(errors="replace"))

    metrics = http_request("GET", f"{gateway.url}/metrics").body.decode()
    gateway.stop()  # flush and close the log
    log = gateway.server.log()
    assert "/v1/chat/completions" in log  # the access log was on: requests were logged
    store_bytes = (server_pool.root / "fulcrum.db").read_bytes()
    audit_files = [
        path
        for folder in ("audit-spool", "audit-shipped")
        for path in (server_pool.root / folder).rglob("*")
        if path.is_file()
    ]
    audit_text = "\n".join(
        (gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()).decode(
            errors="replace"
        )
        for p in audit_files
    )
    assert audit_text.count('"request_id"') >= len(credentials)  # the audit log was written

    secrets = {
        "static key": STATIC_KEY,
        "attacker's key": WRONG_KEY,
        "store key": store_key,
        "store key secret": store_key.rsplit("_", 1)[1],
        "tampered store key secret": tampered_store_key.rsplit("_", 1)[1],
        "JWT": good_jwt,
        "JWT signature": good_jwt.rsplit(".", 1)[1],
        "expired JWT signature": expired_jwt.rsplit(".", 1)[1],
        "AWS secret access key": AWS_SECRET,
    }
    places = {
        "responses": "\n".join(seen),
        "metrics": metrics,
        "log": log,
        "audit log": audit_text,
    }
    for name, secret in secrets.items():
        for place, text in places.items():
            assert secret not in text, f"the {name} appears in the {place}"
        assert secret.encode() not in store_bytes, f"the {name} appears in the store"
    # The configuration file names the secrets only through the environment.
    written = Path(gateway.config_path).read_text()
    assert STATIC_KEY not in written and AWS_SECRET not in written
