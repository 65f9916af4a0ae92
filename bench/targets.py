"""The rows of the benchmark: how each system under test is started against the shared upstream.

A target turns a :class:`Context` into a running :class:`~bench.procs.Server` (or ``None`` for
``direct`` and ``bedrock-direct``, which talk to their upstream themselves). Start-up problems
raise :class:`~bench.procs.StartError`, which the runner turns into an "unavailable: why" row,
so a missing or broken gateway never stops the other rows from being measured.

Two upstreams: the bench's OpenAI-compatible one (:mod:`bench.upstream`) and Fulcrum's Bedrock
Runtime emulator (``fulcrum sim bedrock --no-latency --no-auth``), behind which
``fulcrum-bedrock`` translates, SigV4-signs and decodes the event stream.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import loadgen, peers, procs

OPENAI_UPSTREAM, BEDROCK_UPSTREAM = "openai", "bedrock"
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"  # the emulator's default model
BEDROCK_REGION = "us-east-1"
# The emulator's documented test credentials: Fulcrum signs with them, the emulator (--no-auth)
# does not verify, so only the gateway's signing cost is measured.
EMULATOR_ACCESS_KEY = "AKIDFULCRUMSIM"
EMULATOR_SECRET_KEY = "fulcrum-sim-secret-access-key-not-a-secret"
EMULATOR_READY_PATH = "/ping"
EMULATOR_OUTPUT_TOKENS = loadgen.BEDROCK_STREAM_TOKENS  # natural reply length: 64 deltas


@dataclass(frozen=True)
class Context:
    """What every target needs to know to start."""

    upstream_url: str  # scheme://host:port of the bench upstream, no path
    model: str
    work_dir: Path  # generated configuration files
    log_dir: Path
    proxy_core: int | None  # the core the system under test is pinned to
    repo_root: Path
    bedrock_url: str | None = None  # the Bedrock emulator, when a Bedrock row is measured


def _openai_workload(ctx: Context) -> loadgen.Workload:
    return loadgen.openai_workload(ctx.model)


@dataclass(frozen=True)
class Target:
    """One row: its name, how to start it, how to tell it is ready, and what it is sent."""

    name: str
    start: Callable[[Context], procs.Server | None]
    ready_path: str = "/health"
    ready_timeout: float = 30.0
    upstream: str = OPENAI_UPSTREAM  # the upstream behind it (or that it is, when start → None)
    workload: Callable[[Context], loadgen.Workload] = _openai_workload


def _server_section(port: int) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "max_body_bytes": 10 * 1024 * 1024,
        "access_log": False,
    }


def fulcrum_config(port: int, upstream_url: str, model: str) -> dict[str, Any]:
    """A gateway configuration with one OpenAI-compatible deployment: the bench upstream."""
    return {
        "server": _server_section(port),
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


ROUTED_DEPLOYMENTS = ("replica-a", "replica-b", "replica-c")


def fulcrum_routed_config(port: int, upstream_url: str, model: str) -> dict[str, Any]:
    """Routing at work: three deployments behind the alias, least-busy, scraped every second.

    Each deployment is the same bench upstream (its own pool), which serves a vLLM-style
    ``/metrics``: the row measures the planner, breakers, load tracking and probes, not a
    different upstream.
    """
    single = fulcrum_config(port, upstream_url, model)["deployments"]["bench-upstream"]
    probe = {"path": "/health", "interval": 1, "metrics_path": "/metrics", "max_waiting": 64}
    return {
        "server": _server_section(port),
        "deployments": {name: {**single, "health_check": probe} for name in ROUTED_DEPLOYMENTS},
        "models": {model: {"deployments": list(ROUTED_DEPLOYMENTS), "strategy": "least_busy"}},
        "auth": "none",
    }


BENCH_KEY = "sk-bench"  # what the load generator sends as its bearer key
BENCH_REDIS_URL = "redis://127.0.0.1:6379/0"


def fulcrum_tenancy_config(port: int, upstream_url: str, model: str) -> dict[str, Any]:
    """The plain gateway plus authentication and Redis-backed limits for the bench's tenant.

    The limits are far above what the run can reach, so every request pays for checking and
    settling them (admissions coalesced into shared Redis script calls, settlements batched)
    and none is refused.
    """
    config = fulcrum_config(port, upstream_url, model)
    limits = {"rpm": 100_000_000, "tpm": 1_000_000_000_000, "concurrency": 100_000}
    return {
        **config,
        "auth": {"keys": [{"key": BENCH_KEY, "tenant": "bench"}], "store_keys": False},
        "tenants": {"bench": {"limits": {**limits, "budget": {"daily_usd": 1e12}}}},
        "redis": {"url": BENCH_REDIS_URL, "key_prefix": f"fulcrum-bench-{port}:"},
        "limits": {"backend": "redis", "on_backend_error": "fail_closed"},
    }


def fulcrum_audit_config(
    port: int, upstream_url: str, model: str, work_dir: Path
) -> dict[str, Any]:
    """The plain gateway writing the audit log: every request fsync'd to the spool before its
    response completes (group commit), segments shipped to a directory in the background."""
    spool = work_dir / f"audit-{port}"
    return {
        **fulcrum_config(port, upstream_url, model),
        "audit": {
            "enabled": True,
            "spool_dir": str(spool / "spool"),
            "sink": {"type": "directory", "path": str(spool / "shipped")},
        },
    }


def fulcrum_cache_config(port: int, upstream_url: str, model: str) -> dict[str, Any]:
    """The plain gateway with the in-memory prompt cache: the row's plain requests are
    deterministic, so after the first every one is a hit (`fulcrum`: every one a miss)."""
    return {**fulcrum_config(port, upstream_url, model), "cache": {"enabled": True}}


def fulcrum_bedrock_config(port: int, emulator_url: str, model: str) -> dict[str, Any]:
    """A gateway configuration whose one deployment is Bedrock: the emulator, signed with SigV4.

    Clients ask for ``model`` (the bench's usual alias) with OpenAI requests; Fulcrum
    translates them to Converse, signs each with botocore and decodes the event stream.
    """
    return {
        "server": _server_section(port),
        "deployments": {
            "bench-bedrock": {
                "provider": "bedrock",
                "region": BEDROCK_REGION,
                "model": BEDROCK_MODEL,
                "endpoint_url": emulator_url,
                "auth": {
                    "access_key_id": EMULATOR_ACCESS_KEY,
                    "secret_access_key": EMULATOR_SECRET_KEY,
                },
                "timeouts": {"connect": 2, "ttft": 30, "total": 60},
            }
        },
        "models": {model: ["bench-bedrock"]},
        "auth": "none",
    }


def emulator_argv(port: int) -> list[str]:
    """The Bedrock emulator as a lean upstream: no delays, no signature checks, 64-token replies.

    Without latency it answers at once and writes a whole stream in one chunked body; without
    auth the SigV4 verification (botocore on the emulator's side) costs core 1 nothing.
    """
    tokens = str(EMULATOR_OUTPUT_TOKENS)
    return [
        sys.executable,
        "-m",
        "fulcrum.cli",
        "sim",
        "bedrock",
        "--port",
        str(port),
        "--no-latency",
        "--no-auth",
        "--min-output-tokens",
        tokens,
        "--max-output-tokens",
        tokens,
    ]


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


def _serve(ctx: Context, name: str, config: Callable[[int], dict[str, Any]]) -> procs.Server:
    """``fulcrum serve`` on a free port with the configuration ``config(port)``, as row ``name``."""
    port = procs.free_port()
    path = write_yaml(ctx.work_dir / f"{name}.yaml", config(port))
    argv = [sys.executable, "-m", "fulcrum.cli", "serve", "--config", str(path)]
    return procs.start(name, argv, port, ctx.log_dir, ctx.proxy_core)


def _start_fulcrum(ctx: Context) -> procs.Server:
    return _serve(ctx, "fulcrum", lambda port: fulcrum_config(port, ctx.upstream_url, ctx.model))


def _start_fulcrum_routed(ctx: Context) -> procs.Server:
    return _serve(
        ctx, "fulcrum-routed", lambda port: fulcrum_routed_config(port, ctx.upstream_url, ctx.model)
    )


def _start_fulcrum_tenancy(ctx: Context) -> procs.Server:
    return _serve(
        ctx,
        "fulcrum-tenancy",
        lambda port: fulcrum_tenancy_config(port, ctx.upstream_url, ctx.model),
    )


def _start_fulcrum_audit(ctx: Context) -> procs.Server:
    return _serve(
        ctx,
        "fulcrum-audit",
        lambda port: fulcrum_audit_config(port, ctx.upstream_url, ctx.model, ctx.work_dir),
    )


def _start_fulcrum_cache(ctx: Context) -> procs.Server:
    return _serve(
        ctx, "fulcrum-cache", lambda port: fulcrum_cache_config(port, ctx.upstream_url, ctx.model)
    )


def _deterministic_workload(ctx: Context) -> loadgen.Workload:
    """Cacheable plain requests (hits after the first); streams stay uncacheable, so the
    streaming phase still measures 64 relayed chunks rather than one replayed answer."""
    work = loadgen.openai_workload(ctx.model)
    return dataclasses.replace(work, body=loadgen.chat_body(ctx.model, deterministic=True))


def _emulator_url(ctx: Context) -> str:
    if ctx.bedrock_url is None:
        raise procs.StartError("the Bedrock emulator is not running")
    return ctx.bedrock_url


def _start_bedrock_direct(ctx: Context) -> None:
    _emulator_url(ctx)  # nothing to start, but its upstream must be there


def _start_fulcrum_bedrock(ctx: Context) -> procs.Server:
    return _serve(
        ctx,
        "fulcrum-bedrock",
        lambda port: fulcrum_bedrock_config(port, _emulator_url(ctx), ctx.model),
    )


def _bedrock_workload(_: Context) -> loadgen.Workload:
    return loadgen.bedrock_workload(BEDROCK_MODEL)


def _fulcrum_bedrock_workload(ctx: Context) -> loadgen.Workload:
    # The same maxTokens as bedrock-direct's requests, so both get replies of the same length.
    return loadgen.openai_workload(ctx.model, stream_max_tokens=loadgen.BEDROCK_STREAM_TOKENS)


def _start_litellm(ctx: Context) -> procs.Server:
    return peers.start_litellm(
        ctx.repo_root, ctx.work_dir, ctx.log_dir, ctx.upstream_url, ctx.model, ctx.proxy_core
    )


DIRECT = Target("direct", _start_direct)
PASSTHROUGH = Target("passthrough", _start_passthrough, ready_path="/health")
FULCRUM = Target("fulcrum", _start_fulcrum, ready_path="/healthz", ready_timeout=30.0)
FULCRUM_ROUTED = Target(
    "fulcrum-routed", _start_fulcrum_routed, ready_path="/healthz", ready_timeout=30.0
)
FULCRUM_TENANCY = Target(
    "fulcrum-tenancy", _start_fulcrum_tenancy, ready_path="/healthz", ready_timeout=30.0
)
FULCRUM_AUDIT = Target(
    "fulcrum-audit", _start_fulcrum_audit, ready_path="/healthz", ready_timeout=30.0
)
FULCRUM_CACHE = Target(
    "fulcrum-cache",
    _start_fulcrum_cache,
    ready_path="/healthz",
    ready_timeout=30.0,
    workload=_deterministic_workload,
)
LITELLM = Target(
    "litellm", _start_litellm, ready_path=peers.LITELLM_READY_PATH, ready_timeout=120.0
)
BEDROCK_DIRECT = Target(
    "bedrock-direct",
    _start_bedrock_direct,
    upstream=BEDROCK_UPSTREAM,
    workload=_bedrock_workload,
)
FULCRUM_BEDROCK = Target(
    "fulcrum-bedrock",
    _start_fulcrum_bedrock,
    ready_path="/healthz",
    ready_timeout=30.0,
    upstream=BEDROCK_UPSTREAM,
    workload=_fulcrum_bedrock_workload,
)
BEDROCK_ROWS = [BEDROCK_DIRECT, FULCRUM_BEDROCK]


def selected(peers_wanted: bool, bedrock_wanted: bool = True) -> list[Target]:
    """The rows of a run, in order: each baseline before the rows measured against it."""
    rows = [DIRECT, PASSTHROUGH, FULCRUM, FULCRUM_ROUTED, FULCRUM_TENANCY, FULCRUM_AUDIT]
    rows.append(FULCRUM_CACHE)
    if peers_wanted:
        rows.append(LITELLM)
    if bedrock_wanted:
        rows += BEDROCK_ROWS
    return rows
