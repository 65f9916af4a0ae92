"""The rows of the benchmark: how each system under test is started against the shared upstream.

A target turns a :class:`Context` into a running :class:`~bench.procs.Server` (or ``None`` for
``direct``, which talks to the upstream itself). Start-up problems raise
:class:`~bench.procs.StartError`, which the runner turns into an "unavailable: why" row, so a
missing or broken gateway never stops the other rows from being measured.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import peers, procs


@dataclass(frozen=True)
class Context:
    """What every target needs to know to start."""

    upstream_url: str  # scheme://host:port of the bench upstream, no path
    model: str
    work_dir: Path  # generated configuration files
    log_dir: Path
    proxy_core: int | None  # the core the system under test is pinned to
    repo_root: Path


@dataclass(frozen=True)
class Target:
    """One row: its name, how to start it, and how to tell it is ready."""

    name: str
    start: Callable[[Context], procs.Server | None]
    ready_path: str = "/health"
    ready_timeout: float = 30.0


def fulcrum_config(port: int, upstream_url: str, model: str) -> dict[str, Any]:
    """A gateway configuration with one OpenAI-compatible deployment: the bench upstream."""
    return {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "max_body_bytes": 10 * 1024 * 1024,
            "access_log": False,
        },
        "deployments": {
            "bench-upstream": {
                "provider": "openai",
                "base_url": f"{upstream_url}/v1",
                "model": model,
                "timeouts": {"connect": 2, "ttft": 30, "total": 60},
                "health_check": {"path": "/health", "interval": 5},
            }
        },
        "models": {model: ["bench-upstream"]},
        "auth": "none",
    }


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as YAML and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _start_direct(_: Context) -> None:
    return None


def _start_passthrough(ctx: Context) -> procs.Server:
    port = procs.free_port()
    argv = [sys.executable, "-m", "bench.passthrough", "--port", str(port)]
    argv += ["--upstream", ctx.upstream_url]
    return procs.start("passthrough", argv, port, ctx.log_dir, ctx.proxy_core)


def _start_fulcrum(ctx: Context) -> procs.Server:
    port = procs.free_port()
    config = write_yaml(
        ctx.work_dir / "fulcrum.yaml", fulcrum_config(port, ctx.upstream_url, ctx.model)
    )
    argv = [sys.executable, "-m", "fulcrum.cli", "serve", "--config", str(config)]
    return procs.start("fulcrum", argv, port, ctx.log_dir, ctx.proxy_core)


def _start_litellm(ctx: Context) -> procs.Server:
    return peers.start_litellm(
        ctx.repo_root, ctx.work_dir, ctx.log_dir, ctx.upstream_url, ctx.model, ctx.proxy_core
    )


DIRECT = Target("direct", _start_direct)
PASSTHROUGH = Target("passthrough", _start_passthrough, ready_path="/health")
FULCRUM = Target("fulcrum", _start_fulcrum, ready_path="/healthz", ready_timeout=30.0)
LITELLM = Target(
    "litellm", _start_litellm, ready_path=peers.LITELLM_READY_PATH, ready_timeout=120.0
)


def selected(peers_wanted: bool) -> list[Target]:
    """The rows of a run, in order; ``direct`` first because every other row is compared to it."""
    rows = [DIRECT, PASSTHROUGH, FULCRUM]
    if peers_wanted:
        rows.append(LITELLM)
    return rows
