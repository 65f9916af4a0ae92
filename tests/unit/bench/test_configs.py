"""Configuration files the benchmark generates for the gateways under test."""

from __future__ import annotations

from pathlib import Path

import yaml
from bench.peers import litellm_config
from bench.targets import fulcrum_config, write_yaml


def test_fulcrum_config_points_at_the_upstream(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "f.yaml", fulcrum_config(8123, "http://127.0.0.1:9001", "m"))
    config = yaml.safe_load(path.read_text())
    assert config["server"]["port"] == 8123
    assert config["server"]["access_log"] is False
    deployment = config["deployments"]["bench-upstream"]
    assert deployment["provider"] == "openai"
    assert deployment["base_url"] == "http://127.0.0.1:9001/v1"
    assert config["models"] == {"m": ["bench-upstream"]}
    assert config["auth"] == "none"


def test_litellm_config_uses_the_openai_compatible_provider() -> None:
    config = litellm_config("http://127.0.0.1:9001", "m")
    params = config["model_list"][0]["litellm_params"]
    assert config["model_list"][0]["model_name"] == "m"
    assert params["model"] == "openai/m"
    assert params["api_base"] == "http://127.0.0.1:9001/v1"
