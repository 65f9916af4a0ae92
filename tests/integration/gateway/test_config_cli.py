"""``fulcrum serve`` with a broken configuration: exit 2, one stderr line naming the key.

Each case runs the real CLI in a subprocess (all cases at once, in threads, to keep the module
fast) and then checks that nothing listens on the port it was told to use.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Emulator, Gateway, http_request
from tests.support.servers import free_port, fulcrum_command, start_server


def _valid() -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": 8080, "max_body_bytes": 1048576},
        "deployments": {
            "vllm-a": {
                "provider": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "model": "upstream-model",
                "timeouts": {"connect": 2, "ttft": 30, "total": 60},
                "health_check": {"path": "/health", "interval": 1},
            }
        },
        "models": {"llama": ["vllm-a"]},
        "auth": [{"key": "${FULCRUM_CFG_TEST_KEY}", "tenant": "acme"}],
    }


def _with(path: str, value: Any) -> dict[str, Any]:
    """The valid configuration with the dotted ``path`` set to ``value`` (or deleted)."""
    config = copy.deepcopy(_valid())
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return config


_DELETE = object()


@dataclass(frozen=True)
class Case:
    config: dict[str, Any] | str
    names: tuple[str, ...]
    """Substrings the one-line message must contain (the key path, the variable...)."""


CASES: dict[str, Case] = {
    "bad-base-url": Case(
        _with("deployments.vllm-a.base_url", "not a url"), ("deployments.vllm-a.base_url",)
    ),
    "missing-model-id": Case(
        _with("deployments.vllm-a.model", _DELETE), ("deployments.vllm-a.model",)
    ),
    "unknown-deployment-in-alias": Case(
        _with("models.llama", ["vllm-a", "ghost"]), ("models.llama", "ghost")
    ),
    "missing-env-var": Case(
        _with("deployments.vllm-a.api_key", "${FULCRUM_CFG_UNSET_VARIABLE}"),
        ("deployments.vllm-a.api_key", "FULCRUM_CFG_UNSET_VARIABLE"),
    ),
    "missing-env-var-in-auth": Case(
        _with("auth.0.key", "${FULCRUM_CFG_OTHER_UNSET}"),
        ("auth.0.key", "FULCRUM_CFG_OTHER_UNSET"),
    ),
    "unknown-top-level-key": Case({**_valid(), "servr": {"port": 1}}, ("servr",)),
    "unknown-deployment-key": Case(
        _with("deployments.vllm-a.base_ur1", "http://127.0.0.1:9/v1"),
        ("deployments.vllm-a.base_ur1",),
    ),
    "ttft-over-total": Case(
        _with("deployments.vllm-a.timeouts", {"connect": 2, "ttft": 90, "total": 60}),
        ("deployments.vllm-a.timeouts",),
    ),
    "negative-interval": Case(
        _with("deployments.vllm-a.health_check.interval", -1),
        ("deployments.vllm-a.health_check.interval",),
    ),
    "port-out-of-range": Case(_with("server.port", 70000), ("server.port",)),
    "zero-body-limit": Case(_with("server.max_body_bytes", 0), ("server.max_body_bytes",)),
    "no-deployments": Case(_with("deployments", {}), ("deployments",)),
    "no-models-section": Case(_with("models", _DELETE), ("models",)),
    "alias-without-deployments": Case(_with("models.llama", []), ("models",)),
    "auth-key-and-hash": Case(
        _with("auth", [{"key": "k" * 16, "key_sha256": "a" * 64, "tenant": "acme"}]),
        ("auth.keys.0",),
    ),
    "auth-bad-hash": Case(
        _with("auth", [{"key_sha256": "not-hex", "tenant": "acme"}]), ("auth.keys.0.key_sha256",)
    ),
    "unreachable-store": Case(
        _with("store", {"url": f"postgresql://nobody@127.0.0.1:{free_port()}/none"}),
        ("store", "connection"),
    ),
    "unknown-provider": Case(
        _with("deployments.vllm-a.provider", "bogus"), ("deployments.vllm-a",)
    ),
    "not-a-mapping": Case("- just\n- a list\n", ()),
    "invalid-yaml": Case("deployments: {vllm-a: [unclosed\n", ()),
}


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    port: int


def _run(tmp: Path, name: str, config: dict[str, Any] | str | None) -> Outcome:
    port = free_port()
    path = tmp / f"{name}.yaml"
    if config is not None:
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        path.write_text(text)
    env = {key: value for key, value in os.environ.items() if not key.startswith("FULCRUM_CFG_")}
    env["FULCRUM_CFG_TEST_KEY"] = "a-valid-test-key-123456"
    completed = subprocess.run(
        fulcrum_command("serve", "--config", str(path), "--port", str(port)),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return Outcome(completed.returncode, completed.stdout, completed.stderr, port)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    tmp = tmp_path_factory.mktemp("configs")
    jobs: dict[str, dict[str, Any] | str | None] = {n: c.config for n, c in CASES.items()}
    jobs["missing-file"] = None
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, tmp, name, config) for name, config in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def _nothing_listens(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _assert_one_line_failure(outcome: Outcome) -> str:
    assert outcome.returncode == 2, outcome
    assert "Traceback" not in outcome.stderr, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr
    assert _nothing_listens(outcome.port)
    return lines[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_config_exits_2_with_one_line_naming_the_key(
    outcomes: dict[str, Outcome], name: str
) -> None:
    line = _assert_one_line_failure(outcomes[name])
    for expected in CASES[name].names:
        assert expected in line, (expected, line)


def test_missing_file_exits_2(outcomes: dict[str, Outcome]) -> None:
    line = _assert_one_line_failure(outcomes["missing-file"])
    assert "missing-file.yaml" in line


def test_invalid_yaml_names_the_file(outcomes: dict[str, Outcome]) -> None:
    line = _assert_one_line_failure(outcomes["invalid-yaml"])
    assert "invalid-yaml.yaml" in line


def test_valid_config_starts_and_listens(tmp_path: Path) -> None:
    """Control: the same configuration, unbroken and with its variable set, does start."""
    port = free_port()
    path = tmp_path / "valid.yaml"
    path.write_text(yaml.safe_dump(_valid(), sort_keys=False))
    server = start_server(
        fulcrum_command("serve", "--config", str(path), "--port", str(port)),
        port,
        tmp_path / "logs",
        "/healthz",
        env={"FULCRUM_CFG_TEST_KEY": "a-valid-test-key-123456"},
    )
    try:
        assert not _nothing_listens(port)
        status = http_request("GET", f"{server.url}/healthz").status
        assert status == 200
        # The interpolated key is the one that authenticates.
        result = http_request(
            "GET",
            f"{server.url}/v1/models",
            headers={"Authorization": "Bearer a-valid-test-key-123456"},
        )
        assert result.status == 200, result.body
        assert [m["id"] for m in result.json()["data"]] == ["llama"]
        wrong = http_request(
            "GET",
            f"{server.url}/v1/models",
            headers={"Authorization": "Bearer ${FULCRUM_CFG_TEST_KEY}"},
        )
        assert wrong.status == 401
    finally:
        server.stop()


def test_env_interpolation_in_a_deployment_reaches_the_upstream(
    emulator: Callable[..., Emulator], gateway: Callable[..., Gateway]
) -> None:
    """``${VAR}`` anywhere in the file is read from the gateway's environment."""
    upstream = emulator("interp-model", "--no-latency")
    config = {
        "deployments": {
            "vllm-a": {
                "provider": "openai",
                "base_url": "http://127.0.0.1:${FULCRUM_CFG_UPSTREAM_PORT}/v1",
                "model": "${FULCRUM_CFG_UPSTREAM_MODEL}",
            }
        },
        "models": {"llama": ["vllm-a"]},
        "auth": "none",
    }
    served = gateway(
        config,
        env={
            "FULCRUM_CFG_UPSTREAM_PORT": str(upstream.server.port),
            "FULCRUM_CFG_UPSTREAM_MODEL": upstream.model,
        },
        api_key=None,
    )
    response = served.client().chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert response.model == "interp-model"
    assert response.choices[0].message.content
