"""Command-line options become validated settings; bad values are one-line user errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from fulcrum.cli import _build_parser
from fulcrum.errors import UserError
from fulcrum.sim.bedrock.catalog import HAIKU
from fulcrum.sim.bedrock.cli import add_arguments, faults_from_args, settings_from_args
from fulcrum.sim.bedrock.settings import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults() -> None:
    settings = settings_from_args(_parse())
    assert settings.auth and not settings.no_latency
    assert (settings.access_key, settings.secret_key) == (DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
    assert settings.region is None and settings.api_keys == ()
    assert len(settings.catalog.models) == 4
    assert settings.catalog.resolve(HAIKU).rpm is None


def test_flags() -> None:
    settings = settings_from_args(
        _parse(
            "--no-auth",
            "--no-latency",
            "--api-key",
            "k1",
            "--api-key",
            "k2",
            "--region",
            "eu-west-1",
            "--on-demand-rpm",
            "10",
            "--on-demand-tpm",
            "1000",
        )
    )
    assert not settings.auth and settings.no_latency
    assert settings.api_keys == ("k1", "k2")
    assert settings.region == "eu-west-1"
    target = settings.catalog.resolve(f"us.{HAIKU}")
    assert (target.rpm, target.tpm) == (10, 1000)


def test_catalog_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - id: meta.llama3-1-8b-instruct-v1:0\n")
    assert len(settings_from_args(_parse("--catalog", str(path))).catalog.models) == 1
    path.write_text("models: []\n")
    with pytest.raises(UserError, match="--catalog"):
        settings_from_args(_parse("--catalog", str(path)))
    with pytest.raises(UserError, match="cannot read"):
        settings_from_args(_parse("--catalog", str(tmp_path / "missing.yaml")))


@pytest.mark.parametrize(
    "argv",
    [
        ("--port", "0"),
        ("--port", "9000", "--admin-port", "9000"),
        ("--speed", "0"),
        ("--min-output-tokens", "0"),
        ("--min-output-tokens", "10", "--max-output-tokens", "5"),
        ("--on-demand-rpm", "0"),
        ("--secret-key", ""),
    ],
)
def test_invalid_options_are_user_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(UserError):
        settings_from_args(_parse(*argv))


def test_initial_faults_are_validated() -> None:
    assert faults_from_args(_parse()) is None
    faults = faults_from_args(
        _parse("--faults", '{"error_rate": 1, "error_type": "ThrottlingException"}')
    )
    assert faults is not None and faults.error_type == "ThrottlingException"
    with pytest.raises(UserError, match="invalid JSON"):
        faults_from_args(_parse("--faults", "{"))
    with pytest.raises(UserError, match="error_type"):
        faults_from_args(_parse("--faults", '{"error_type": "Nope"}'))


def test_fulcrum_cli_has_the_sub_command() -> None:
    args = _build_parser().parse_args(["sim", "bedrock", "--port", "9100", "--no-auth"])
    assert (args.command, args.emulator, args.port, args.no_auth) == ("sim", "bedrock", 9100, True)
