"""Command-line options become validated settings; bad values are one-line user errors."""

from __future__ import annotations

import argparse

import pytest

from fulcrum.errors import UserError
from fulcrum.sim.vllm.cli import add_arguments, faults_from_args, settings_from_args


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_look_like_a_small_gpu() -> None:
    settings = settings_from_args(_parse())
    assert settings.max_num_seqs == 256
    assert 10 <= settings.itl_ms <= 20
    assert settings.served_model_names == (settings.model,)
    assert not settings.no_latency


def test_served_model_names_and_timing_flags() -> None:
    settings = settings_from_args(
        _parse("--model", "x/y", "--served-model-name", "a", "b", "--no-latency", "--speed", "4")
    )
    assert settings.served_name == "a"
    assert settings.served_model_names == ("a", "b")
    assert settings.no_latency
    assert settings.speed == 4


@pytest.mark.parametrize(
    "argv",
    [
        ("--port", "0"),
        ("--port", "9000", "--admin-port", "9000"),
        ("--max-num-seqs", "0"),
        ("--speed", "0"),
        ("--itl-ms", "-1"),
        ("--min-output-tokens", "10", "--max-output-tokens", "5"),
        ("--max-model-len", "1"),
    ],
)
def test_invalid_options_are_user_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(UserError):
        settings_from_args(_parse(*argv))


def test_initial_faults_are_validated() -> None:
    assert faults_from_args(_parse()) is None
    faults = faults_from_args(_parse("--faults", '{"not_ready": true}'))
    assert faults is not None and faults.not_ready
    with pytest.raises(UserError, match="invalid JSON"):
        faults_from_args(_parse("--faults", "{"))
    with pytest.raises(UserError, match="error_rate"):
        faults_from_args(_parse("--faults", '{"error_rate": 2}'))
    with pytest.raises(UserError, match="admin-port"):
        faults_from_args(_parse("--faults", '{"refuse_connections": true}'))
