"""Configuration: valid files load into typed objects; every mistake names its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fulcrum.config import load_config, parse_config
from fulcrum.errors import ConfigError


def minimal(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "deployments": {
            "vllm-a": {
                "provider": "openai",
                "base_url": "http://127.0.0.1:8001/v1",
                "model": "meta-llama/Llama-3.1-8B-Instruct",
            }
        },
        "models": {"llama": ["vllm-a"]},
        "auth": "none",
    }
    raw.update(overrides)
    return raw


def test_minimal_config_gets_documented_defaults() -> None:
    config = parse_config(minimal(), environ={})
    deployment = config.deployments["vllm-a"]
    assert config.server.port == 8080
    assert config.server.max_body_bytes == 10 * 1024 * 1024
    assert deployment.timeouts.connect == 5.0
    assert deployment.base == "http://127.0.0.1:8001/v1"
    assert deployment.root == "http://127.0.0.1:8001"
    assert config.models["llama"].deployments == ["vllm-a"]
    assert config.models["llama"].strategy == "priority"


def test_env_interpolation_fills_secrets_and_defaults() -> None:
    raw = minimal(auth=[{"key": "${GW_KEY}", "tenant": "acme"}])
    raw["deployments"]["vllm-a"]["api_key"] = "${UP_KEY:-fallback-key}"
    config = parse_config(raw, environ={"GW_KEY": "sk-test-123456"})
    assert config.deployments["vllm-a"].api_key == "fallback-key"
    assert config.auth.keys[0].key == "sk-test-123456"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["deployments"]["vllm-a"].pop("base_url"), "deployments.vllm-a.base_url"),
        (
            lambda r: r["deployments"]["vllm-a"].update(base_url="not a url"),
            "deployments.vllm-a.base_url",
        ),
        (lambda r: r["deployments"]["vllm-a"].update(provider="azure"), "deployments.vllm-a"),
        (lambda r: r["deployments"]["vllm-a"].update(colour="red"), "deployments.vllm-a.colour"),
        (lambda r: r["models"].update(llama=["ghost"]), "models.llama.deployments.0"),
        (lambda r: r["models"].update(llama=[]), "models"),
        (lambda r: r.update(auth="sometimes"), "auth"),
        (lambda r: r.update(server={"port": 70000}), "server.port"),
        (
            lambda r: r["deployments"]["vllm-a"].update(timeouts={"ttft": 10, "total": 5}),
            "deployments.vllm-a.timeouts",
        ),
    ],
)
def test_mistakes_name_the_key(mutate: Any, expected: str) -> None:
    raw = minimal()
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ={})
    assert str(info.value).startswith(expected), str(info.value)
    assert "\n" not in str(info.value)


def test_missing_environment_variable_names_the_key() -> None:
    raw = minimal()
    raw["deployments"]["vllm-a"]["api_key"] = "${NOT_SET_ANYWHERE}"
    with pytest.raises(ConfigError, match=r"deployments\.vllm-a\.api_key: .*NOT_SET_ANYWHERE"):
        parse_config(raw, environ={})


def test_auth_entry_needs_exactly_one_secret() -> None:
    with pytest.raises(ConfigError, match=r"^auth\.keys\.0"):
        parse_config(minimal(auth=[{"tenant": "acme"}]), environ={})


def test_duplicate_key_is_rejected() -> None:
    auth = [{"key": "sk-same-key-1", "tenant": "a"}, {"key": "sk-same-key-1", "tenant": "b"}]
    with pytest.raises(ConfigError, match=r"^auth: the same key is listed twice"):
        parse_config(minimal(auth=auth), environ={})


def test_load_config_reports_yaml_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("deployments: [\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+"):
        load_config(path)


def test_load_config_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "absent.yaml")


def test_load_config_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    assert load_config(path).deployments["vllm-a"].model == "meta-llama/Llama-3.1-8B-Instruct"


def test_example_configuration_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "gateway.yaml"
    config = load_config(example, environ={"FULCRUM_API_KEY": "sk-example-000000"})
    assert config.models


def test_model_route_mapping_form_and_tenants() -> None:
    raw = minimal(
        models={
            "llama": {
                "deployments": ["vllm-a"],
                "strategy": "weighted",
                "weights": {"vllm-a": 1},
                "workloads": {"batch": ["vllm-a"]},
                "default_workload": "batch",
            }
        },
        tenants={"acme": {"data_policy": {"allowed_regions": ["sa-east-1"], "vpc_only": True}}},
    )
    config = parse_config(raw, environ={})
    route = config.models["llama"]
    assert route.strategy == "weighted" and route.default_workload == "batch"
    policy = config.tenants["acme"].data_policy
    assert policy.allowed_regions == ("sa-east-1",) and policy.vpc_only
    assert policy.describe() == "vpc_only allowed_regions=sa-east-1"


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ({"deployments": ["vllm-a"], "strategy": "weighted"}, "positive weights"),
        ({"deployments": ["vllm-a"], "weights": {"other": 1}}, "not in deployments"),
        ({"deployments": ["vllm-a"], "workloads": {"batch": ["other"]}}, "not in deployments"),
        ({"deployments": ["vllm-a"], "strategy": "random"}, "models.llama.strategy"),
        ({"deployments": ["vllm-a", "vllm-a"]}, "listed twice"),
    ],
)
def test_invalid_model_routes_are_named(route: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        parse_config(minimal(models={"llama": route}), environ={})
    assert str(info.value).startswith("models.llama")
